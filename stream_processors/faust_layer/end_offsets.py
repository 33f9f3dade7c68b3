"""True end offsets of changelog partitions, for Faust's table recovery.

Faust recovers a table by reading its changelog up to the end offset the broker reports
(ListOffsets, "latest"). Tansu reports the *base offset of the last record batch* plus one,
not the last offset plus one (tests/integration/test_end_offsets.py): a recovering worker
stopped before the last batch of each changelog partition. The join state lost that way
included events held for the grace period whose raw offsets were already committed: after a
kill -9 they were never emitted (the 200k kill test lost 375 of 200,000 events in one run).

The fetch path reports the true end. So after asking for end offsets the usual way, the
probe reads from each reported end until the broker says "end of partition", and takes the
larger offset. On a broker that reports true end offsets (Kafka) the probe returns at once
with the same figures: it costs one fetch per changelog partition per recovery.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any, TypeVar

from faust.transport.drivers import aiokafka as faust_aiokafka

from meterline.stream_processors.faust_layer.commits import RESOLVE_AFTER_S, StrictCommits
from meterline.stream_processors.faust_layer.fetch_audit import FetchAudit

log = logging.getLogger(__name__)

TPT = TypeVar("TPT")  # a (topic, partition) named tuple: Faust's TP

PROBE_TIMEOUT_S = 15.0
PROBE_GROUP = "meterline-end-offset-probe"  # never joined, never committed: assign() only


def true_end_offsets(
    client_config: Mapping[str, Any],
    reported: Mapping[TPT, int | None],
    timeout_s: float = PROBE_TIMEOUT_S,
) -> dict[TPT, int | None]:
    """``reported`` end offsets, each raised to the end the fetch path shows: the offset of
    the end-of-partition event, or one past the last record read. A partition the probe
    cannot finish within ``timeout_s`` keeps the largest figure seen (logged)."""
    from confluent_kafka import KafkaError, TopicPartition

    ends = dict(reported)
    start = {tp: end for tp, end in reported.items() if end is not None and end >= 0}
    if not start:
        return ends
    by_key = {(tp.topic, tp.partition): tp for tp in start}  # type: ignore[attr-defined]
    # an end below the log start (retention, compaction): jump to the end, see EOF
    consumer = _probe_consumer(client_config, reset="latest")
    pending = set(by_key)
    try:
        consumer.assign([TopicPartition(t, p, start[by_key[(t, p)]]) for t, p in by_key])
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            for msg in consumer.consume(1_000, timeout=0.2):
                key = (msg.topic(), msg.partition())
                if key not in by_key:
                    continue
                tp = by_key[key]
                err = msg.error()
                offset = msg.offset()
                if err is not None and err.code() != KafkaError._PARTITION_EOF:
                    log.warning("end offset probe of %s[%d]: %s", key[0], key[1], err)
                elif offset is not None and err is None:
                    ends[tp] = max(ends[tp] or 0, offset + 1)  # a record: the end is past it
                elif offset is not None:
                    ends[tp] = max(ends[tp] or 0, offset)  # end of partition: the end itself
                    pending.discard(key)
    finally:
        consumer.close()
    if pending:
        log.warning(
            "end offset probe: no end of partition within %.0f s for %s; using the largest "
            "offset seen", timeout_s, sorted(pending),
        )  # fmt: skip
    raised = {tp: (reported[tp], ends[tp]) for tp in start if ends[tp] != reported[tp]}
    if raised:
        log.info("end offsets the broker under-reported (reported, true): %s", raised)
    return ends


def first_offset_from(
    client_config: Mapping[str, Any],
    topic: str,
    partition: int,
    offset: int,
    timeout_s: float = PROBE_TIMEOUT_S,
) -> int | None:
    """The offset of the first record at or after ``offset`` in the log (past it: the
    records from ``offset`` are absent, e.g. deleted by retention or transaction markers),
    or None when there is none yet or the broker did not answer within ``timeout_s``."""
    from confluent_kafka import KafkaError, TopicPartition

    consumer = _probe_consumer(client_config, reset="earliest")  # below the log start
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for msg in consumer.consume(1, timeout=0.2):
                err = msg.error()
                if err is None:
                    found: int | None = msg.offset()
                    return found
                if err.code() == KafkaError._PARTITION_EOF:
                    return None
                log.warning("first-offset probe of %s[%d]@%d: %s", topic, partition, offset, err)
    finally:
        consumer.close()
    return None


def _probe_consumer(client_config: Mapping[str, Any], *, reset: str) -> Any:
    from confluent_kafka import Consumer

    return Consumer(
        {
            **client_config,
            "group.id": PROBE_GROUP,
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": reset,
        }
    )


class EndProbingConsumer(FetchAudit, StrictCommits, faust_aiokafka.Consumer):
    """Faust's aiokafka consumer whose ``highwaters`` (used by table recovery) are probed,
    whose commits never pass an unacknowledged record (:mod:`.commits`; held commits are
    resolved by reading the log directly), and which warns when Faust's fetch loop drops
    records or counts a gap (:mod:`.fetch_audit`)."""

    async def highwaters(self, *partitions: Any) -> Mapping[Any, int]:
        reported = await super().highwaters(*partitions)
        config = getattr(self.transport, "client_config", None)
        if config is None:  # not built by EndProbingTransport: nothing to probe with
            return reported
        probed = await asyncio.to_thread(true_end_offsets, config, reported)
        return {tp: end for tp, end in probed.items() if end is not None}

    @property
    def resolve_after_s(self) -> float:  # type: ignore[override]
        transport = getattr(self, "transport", None)
        return float(getattr(transport, "resolve_after_s", RESOLVE_AFTER_S))

    def first_offset_from(self, tp: Any, offset: int) -> int | None:
        config = getattr(self.transport, "client_config", None)
        if config is None:
            return None
        return first_offset_from(config, tp.topic, tp.partition, offset)

    async def seek_wait(self, partitions: Mapping[Any, int | None]) -> None:
        """Seek, with a negative or unknown (None) offset read as "from the start". Faust's
        recovery maps only -1 to 0; during a quick second rebalance on Tansu its standby
        seek handed aiokafka None (a standby added without an offset of its own) and crashed
        the worker (``Offset must be a positive integer``)."""
        odd = {tp: o for tp, o in partitions.items() if o is None or o < -1}
        if odd:
            log.warning("recovery asked to seek to offsets %s; reading those from 0", odd)
        await super().seek_wait(
            {tp: 0 if o is None or o < 0 else o for tp, o in partitions.items()}
        )


class EndProbingTransport(faust_aiokafka.Transport):
    """The aiokafka transport with :class:`EndProbingConsumer`. ``client_config``: the
    librdkafka settings of the probe (``bootstrap.servers`` and access)."""

    Consumer = EndProbingConsumer
    client_config: dict[str, Any] | None = None
    resolve_after_s: float = RESOLVE_AFTER_S


def install(
    app: Any, client_config: Mapping[str, Any], *, resolve_after_s: float = RESOLVE_AFTER_S
) -> None:
    """Make ``app`` (a Faust app, before it starts) recover tables to the true end offsets
    and commit strictly (``resolve_after_s``: when a held commit is resolved from the log)."""
    transport = EndProbingTransport(app.conf.broker_consumer, app)
    transport.client_config = dict(client_config)
    transport.resolve_after_s = resolve_after_s
    app.transport = transport

"""Kafka's message-size rule, mirrored before every produce, and the state bounds it implies.

A broker refuses a produce (``MESSAGE_TOO_LARGE``) when a record batch, as written to the
log, exceeds the topic's ``max.message.bytes`` (the broker's ``message.max.bytes`` where the
topic sets none: 1,048,588 by default). librdkafka refuses locally above its own
``message.max.bytes``. Either way the worker used to raise and crash-loop on the record.
:func:`batch_bytes` is the size of the batch that carries one record (the 61-byte batch
header, the record's varint framing, key, value, headers) plus lz4's worst case on
incompressible data, so a record that :meth:`TopicLimits.fits` is never refused for size.
Tansu 0.6 stores ``max.message.bytes`` and reports it (DescribeConfigs) but does not enforce
it: this guard is what enforces it there.

:class:`TopicLimits` holds each target topic's limit, read from the broker at start
(:func:`read_limits`); the bounds on the worker's state (:class:`StateBounds`) are derived
from the smallest limit among the topics it writes state to, so a changelog record always
fits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meterline.stream_processors.errors import ProcessorError

#: Apache Kafka's default ``message.max.bytes`` (broker) / ``max.message.bytes`` (topic).
KAFKA_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588
#: Size of a v2 record batch header (base offset .. record count).
BATCH_HEADER_BYTES = 61

Headers = Sequence[tuple[str, bytes | str | None]] | None


def _varint(n: int) -> int:
    """Bytes of ``n`` as a zigzag varint (Kafka's record fields)."""
    z = (n << 1) ^ (n >> 63)
    size = 1
    while z >= 0x80:
        z >>= 7
        size += 1
    return size


def _field(data: bytes | str | None) -> int:
    if data is None:
        return _varint(-1)
    n = len(data.encode() if isinstance(data, str) else data)
    return _varint(n) + n


def batch_bytes(key: bytes | None, value: bytes | None, headers: Headers = None) -> int:
    """Upper bound of the record batch that carries this one record, compressed or not."""
    hdrs = list(headers or ())
    body = 1 + 1 + 1 + _field(key) + _field(value) + _varint(len(hdrs))  # attrs, deltas
    body += sum(_field(k) + _field(v) for k, v in hdrs)
    records = _varint(body) + body
    # lz4 frame on incompressible input: frame header, a 4-byte size (+ checksum) per 64 KiB
    # block, end mark and content checksum
    return BATCH_HEADER_BYTES + records + records // 8192 + 64


class TopicLimits:
    """``max.message.bytes`` per topic; ``default`` for a topic not listed."""

    def __init__(
        self, limits: Mapping[str, int] | None = None,
        default: int = KAFKA_DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:  # fmt: skip
        self.limits = dict(limits or {})
        self.default = default

    def __getitem__(self, topic: str) -> int:
        return self.limits.get(topic, self.default)

    def fits(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers = None
    ) -> bool:
        return batch_bytes(key, value, headers) <= self[topic]

    def smallest(self, topics: Iterable[str]) -> int:
        return min((self[t] for t in topics), default=self.default)


class OutputTooLarge(ProcessorError):
    """A record would exceed its topic's ``max.message.bytes``: nothing was produced."""

    def __init__(self, topic: str, size: int, limit: int) -> None:
        super().__init__(
            f"output record for {topic} would be {size:,} bytes as a record batch, over the "
            f"topic's max.message.bytes of {limit:,}"
        )
        self.topic, self.size, self.limit = topic, size, limit


#: Room a state record needs beside its bounded part: key (ids of at most 256 characters,
#: up to 6 bytes each JSON-escaped), the other fields, the envelope and the batch framing.
STATE_MARGIN_BYTES = 16_384


@dataclass(frozen=True)
class StateBounds:
    """Bounds on the worker's state, each record within one Kafka message.

    - trajectory ``metadata`` (merged over the trace's records): ``metadata_keys`` keys and
      ``metadata_bytes`` bytes of JSON; beyond, new keys are dropped and counted, and
      ``metadata.meterline_metadata_truncated`` holds how many were dropped;
    - a parked event: ``parked_bytes`` as parked (larger ones are not parked);
    - the rule state of one trajectory: ``rule_bytes`` of slim events (beyond, events are
      not kept and counted as over the cap, as past ``max_events_per_trace``);
    - a dedupe blob: ``dedupe_digests`` 16-byte digests (a batch writes several blobs).
    """

    metadata_keys: int = 1_024
    metadata_bytes: int = 1_000_000
    parked_bytes: int = 990_000
    rule_bytes: int = 1_000_000
    dedupe_digests: int = 50_000

    @classmethod
    def within(cls, limit: int) -> StateBounds:
        """The defaults, lowered where needed so each record fits a topic of ``limit`` bytes."""
        room = max(limit - STATE_MARGIN_BYTES, 1_024)
        base = cls()
        return cls(
            metadata_keys=base.metadata_keys,
            metadata_bytes=min(base.metadata_bytes, room),
            parked_bytes=min(base.parked_bytes, room),
            rule_bytes=min(base.rule_bytes, room),
            dedupe_digests=min(base.dedupe_digests, room // 16),
        )


def read_limits(
    admin: Any, topics: Iterable[str], default: int, timeout_s: float = 30.0
) -> TopicLimits:
    """Each topic's ``max.message.bytes`` as the broker reports it (DescribeConfigs);
    ``default`` for a topic it reports none for (Tansu reports only what was set), or that
    does not exist yet."""
    from confluent_kafka.admin import ConfigResource  # type: ignore[attr-defined]

    names = list(topics)
    resources = [ConfigResource("topic", t) for t in names]
    limits: dict[str, int] = {}
    for resource, future in admin.describe_configs(resources).items():
        try:
            entries = future.result(timeout=timeout_s)
        except Exception:  # a topic not created yet: the default until the worker restarts
            continue
        entry = entries.get("max.message.bytes")
        if entry is not None and entry.value:
            limits[resource.name] = int(entry.value)
    return TopicLimits(limits, default)

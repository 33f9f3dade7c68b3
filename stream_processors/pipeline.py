"""The processor chain, read top to bottom like the diagram:

    raw topics (actions, telemetry, trajectories; keyed by trace_id)
      -> validate           invalid -> dead-letter topic (original bytes, reason, offset)
      -> dedupe             (project, event_id) already emitted -> dropped
      -> join               by trace_id against the trajectory table
      -> produce            enriched events / trajectory states, and wait for the acks
      -> mark seen          only now, so a crash before the acks replays instead of losing

Co-partitioning, not a repartition hop: producers key raw records by trace_id with the
Java (murmur2) partitioner and all raw topics share one partition count, so a trajectory and
its events meet in one worker, and table changelogs follow the source partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import faust
from faust.streams import _current_event
from faust.types import EventT as _EventT
from mode import CrashingSupervisor

from schemas import EnrichedEvent, Event, RawRecord, TrajectoryRecord, encode
from stream_processors.dedupe_store import PersistentDedupe
from stream_processors.errors import InvalidMessage
from stream_processors.output import BatchOutput
from stream_processors.settings import Settings
from stream_processors.steps.dedupe import DedupeWindow
from stream_processors.steps.dlq_limit import DlqLimit
from stream_processors.steps.join import TrajectoryJoiner
from stream_processors.steps.validate import dead_letter_for, validate

log = logging.getLogger(__name__)

EventT = _EventT[bytes]

BATCH_MAX = 10_000
BATCH_WITHIN_S = 0.5


@contextlib.contextmanager
def as_current(event: EventT) -> Iterator[None]:
    """Make ``event`` Faust's current event, so table writes inside a ``take_events`` batch
    changelog to the partition the event came from (Faust only sets it per single event)."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


@dataclass(frozen=True)
class Outputs:
    """Where the processor writes, and the producer that writes there."""

    producer: BatchOutput
    enriched: str
    trajectory_state: str
    dead_letters: str


class BatchProcessor:
    """Runs one batch of Faust events through validate -> dedupe -> join -> produce -> mark.

    Outputs go through :class:`BatchOutput` (librdkafka). Before events are marked seen, the
    batch waits for the acks of its outputs *and* of the join-state changelog (Faust's
    producer, ``flush_state``): otherwise a crash could leave an early event marked seen but
    not parked, and it would never be re-emitted joined.
    """

    def __init__(
        self,
        outputs: Outputs,
        dedupe: PersistentDedupe,
        joiner: TrajectoryJoiner,
        flush_state: Callable[[], Awaitable[None]],
        dlq_limit: DlqLimit | None = None,
    ) -> None:
        self.out = outputs
        self.dedupe = dedupe
        self.joiner = joiner
        self.flush_state = flush_state
        self.dlq_limit = dlq_limit or DlqLimit()
        self.dead_letters = 0

    async def process(self, events: list[EventT]) -> None:
        out = self.out
        accepted: list[tuple[int, int, Event]] = []
        in_flight: set[bytes] = set()
        for fe in events:
            with as_current(fe):
                record = self._validate(fe)
                if record is None:
                    continue
                if isinstance(record, TrajectoryRecord):
                    state, late = self.joiner.apply_trajectory(record)
                    out.producer.send(
                        out.trajectory_state, record.routing_key.encode(), encode(state)
                    )
                    for enriched in late:
                        self._send_enriched(enriched)
                    continue
                if self.dedupe.window.is_duplicate(record, in_flight):
                    continue
                self._send_enriched(self.joiner.join(record))
                accepted.append((fe.message.partition, fe.message.offset, record))
        # raises if the broker refused: the worker crashes and the batch replays
        await asyncio.gather(out.producer.flush(), self.flush_state())
        by_partition = {fe.message.partition: fe for fe in events}
        self.dedupe.mark(accepted, lambda p: as_current(by_partition[p]))

    def _validate(self, fe: EventT) -> RawRecord | None:
        msg = fe.message
        try:
            record = validate(
                msg.value, topic=msg.topic, partition=msg.partition, offset=msg.offset
            )
            self.dlq_limit.record(True)
            return record
        except InvalidMessage as exc:
            self.dlq_limit.record(False, exc.reason)  # raises in a poison-message storm
            self.dead_letters += 1
            log.warning("dead-lettered %s", exc)
            letter = dead_letter_for(exc, msg.key, msg.value)
            self.out.producer.send(self.out.dead_letters, msg.key, encode(letter))
            return None

    def _send_enriched(self, enriched: EnrichedEvent) -> None:
        key = enriched.event.routing_key.encode()
        self.out.producer.send(self.out.enriched, key, encode(enriched))


def build_pipeline(app: faust.App, settings: Settings) -> BatchProcessor:
    """Declare topics, tables and the agent on ``app``; return the processor (for stats)."""
    topics = settings.topics
    n = settings.partitions

    def raw_topic(*names: str) -> faust.TopicT:
        # "raw" serializers: Faust must hand over the bytes untouched. With its default
        # JSON value serializer, one non-JSON record stalls the whole stream unacked.
        return app.topic(
            *names,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=n,
        )

    assert settings.kafka_bootstrap
    outputs = Outputs(
        producer=BatchOutput(settings.kafka_bootstrap),
        enriched=topics.enriched,
        trajectory_state=topics.trajectory_state,
        dead_letters=topics.dead_letters,
    )
    seen = app.Table("dedupe-window", partitions=n, key_type=str, value_type=bytes)
    dedupe = PersistentDedupe(seen, DedupeWindow(window_s=settings.dedupe_window_s))
    trajectories = app.Table("trajectories", partitions=n, key_type=str)
    parked = app.Table("pending-events", partitions=n, key_type=str)
    joiner = TrajectoryJoiner(trajectories, parked)
    limit = DlqLimit(settings.dlq_max_ratio or None)
    processor = BatchProcessor(outputs, dedupe, joiner, app.producer.flush, limit)
    source = raw_topic(*topics.raw)

    @seen.on_recover
    async def _rebuild_dedupe_window() -> None:  # after every recovery: restart, rebalance
        loaded = dedupe.rebuild()
        log.info("dedupe window rebuilt: %d events remembered", loaded)

    # an agent crash (e.g. undeliverable output) stops the worker: its partitions replay
    # from the last commit on the next owner instead of continuing past a gap
    @app.agent(source, name="meterline-process", supervisor_strategy=CrashingSupervisor)
    async def process(stream: Any) -> None:  # faust.Stream: take_events is not on StreamT
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            await processor.process(list(events))

    return processor

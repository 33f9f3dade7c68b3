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
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import faust
from faust.streams import _current_event
from faust.types import EventT as _EventT

from schemas import DeadLetter, TrajectoryRecord, encode
from stream_processors.errors import InvalidMessage
from stream_processors.settings import Settings
from stream_processors.steps.dedupe import Deduplicator
from stream_processors.steps.join import TrajectoryJoiner
from stream_processors.steps.validate import dead_letter_for, validate

log = logging.getLogger(__name__)

EventT = _EventT[bytes]

BATCH_MAX = 2_000
BATCH_WITHIN_S = 0.2


@contextlib.contextmanager
def as_current(event: EventT) -> Iterator[None]:
    """Make ``event`` Faust's current event, so table writes inside a ``take_events`` batch
    changelog to the partition the event came from (Faust only sets it per single event)."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


@dataclass
class Outputs:
    enriched: faust.TopicT
    trajectory_state: faust.TopicT
    dead_letters: faust.TopicT


class BatchProcessor:
    """Runs one batch of Faust events through validate -> dedupe -> join -> produce -> mark.

    Sends use ``force=True``: Faust would otherwise attach them to the source offset and
    publish them only at commit time, and the batch could not wait for their acks.
    """

    def __init__(self, outputs: Outputs, dedupe: Deduplicator, joiner: TrajectoryJoiner) -> None:
        self.out = outputs
        self.dedupe = dedupe
        self.joiner = joiner
        self.dead_letters = 0

    async def process(self, events: list[EventT]) -> None:
        pending: list[Any] = []
        accepted: list[tuple[EventT, Any]] = []
        in_flight: set[str] = set()
        for fe in events:
            with as_current(fe):
                record = await self._validate(fe, pending)
                if record is None:
                    continue
                if isinstance(record, TrajectoryRecord):
                    state, late = self.joiner.apply_trajectory(record)
                    pending.append(
                        await self.out.trajectory_state.send(
                            key=record.routing_key.encode(), value=encode(state), force=True
                        )
                    )
                    for enriched in late:
                        pending.append(await self._send_enriched(enriched))
                    continue
                if self.dedupe.is_duplicate(record, in_flight):
                    continue
                pending.append(await self._send_enriched(self.joiner.join(record)))
                accepted.append((fe, record))
        if pending:
            await asyncio.gather(*pending)  # raises if the broker refused: batch replays
        for fe, record in accepted:
            with as_current(fe):
                self.dedupe.mark(record)

    async def _validate(self, fe: EventT, pending: list[Any]) -> Any:
        msg = fe.message
        try:
            return validate(msg.value, topic=msg.topic, partition=msg.partition, offset=msg.offset)
        except InvalidMessage as exc:
            self.dead_letters += 1
            letter: DeadLetter = dead_letter_for(exc, msg.key, msg.value)
            log.warning("dead-lettered %s", exc)
            pending.append(
                await self.out.dead_letters.send(key=msg.key, value=encode(letter), force=True)
            )
            return None

    async def _send_enriched(self, enriched: Any) -> Any:
        key = enriched.event.routing_key.encode()
        return await self.out.enriched.send(key=key, value=encode(enriched), force=True)


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

    outputs = Outputs(
        enriched=raw_topic(topics.enriched),
        trajectory_state=raw_topic(topics.trajectory_state),
        dead_letters=raw_topic(topics.dead_letters),
    )
    seen = app.Table("dedupe-seen", partitions=n, key_type=str, value_type=float)
    trajectories = app.Table("trajectories", partitions=n, key_type=str)
    parked = app.Table("pending-events", partitions=n, key_type=str)
    processor = BatchProcessor(outputs, Deduplicator(seen), TrajectoryJoiner(trajectories, parked))
    source = raw_topic(*topics.raw)

    @app.agent(source, name="meterline-process")
    async def process(stream: Any) -> None:  # faust.Stream: take_events is not on StreamT
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            await processor.process(list(events))

    return processor

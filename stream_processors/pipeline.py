"""The processor chain, read top to bottom like the diagram:

    raw topics (actions, telemetry, trajectories; keyed by trace_id)
      -> unframe            a batch message (NDJSON) is split into its records
      -> validate           invalid -> dead-letter topic (original bytes, reason, offset)
      -> dedupe             (project, event_id) already emitted -> dropped
      -> join               by trace_id against the trajectory table
      -> rules              (with a control plane) outcomes of the trajectory rules
      -> produce            enriched events / trajectory states / outcomes, wait for acks
      -> state              join/rule table changelogs, only after the outputs, wait for acks
      -> mark seen          only now, so a crash before the acks replays instead of losing

Co-partitioning, not a repartition hop: producers key raw records by trace_id with the
Java (murmur2) partitioner and all raw topics share one partition count, so a trajectory and
its events meet in one worker, and table changelogs follow the source partition.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import faust
from faust.streams import _current_event
from faust.types import EventT as _EventT
from mode import CrashingSupervisor

from schemas import (
    VERSION_JOINED,
    VERSION_UNJOINED,
    EnrichedEvent,
    RawRecord,
    encode,
    framing,
    utc_now,
)
from schemas.codec import encode_enriched, encode_timestamp
from schemas.fast_decode import TRAJECTORY_TYPES, AnyEvent, FastRecord, to_model
from stream_processors.changelog import Changelog
from stream_processors.dedupe_store import PersistentDedupe
from stream_processors.errors import InvalidMessage
from stream_processors.metrics import ProcessorMetrics
from stream_processors.output import BatchOutput
from stream_processors.rules.stage import RuleStage
from stream_processors.settings import Settings
from stream_processors.steps.dedupe import DedupeWindow, Seen
from stream_processors.steps.dlq_limit import DlqLimit
from stream_processors.steps.join import TrajectoryJoiner
from stream_processors.steps.validate import dead_letter_for, validate
from stream_processors.table_buffer import PartitionPinned, WriteBack, as_current

log = logging.getLogger(__name__)

EventT = _EventT[bytes]

BATCH_MAX = 2_000
#: How long a take waits for ``BATCH_MAX`` messages before it goes with what it has. Faust
#: counts it from the start of each take, and a take of SDK batch messages rarely reaches
#: ``BATCH_MAX``: every take waited the whole window (measured: 0.50 s idle before each take
#: of 137-454 messages in the 300,000-event benchmark, with more fetched and waiting).
BATCH_WITHIN_S = 0.1
#: Records per processing step. A take of ``BATCH_MAX`` SDK-framed messages holds up to
#: ~1,000,000 records: one step over all of them would hold their outputs, parked events and
#: changelog records in memory at once and wait for ~1,000,000 acks within one flush timeout.
#: Large enough that a trajectory usually shares a step with its early events (staging).
BATCH_MAX_RECORDS = 50_000


def records_of(msg: Any) -> list[tuple[int, bytes | None]]:
    """``(item, bytes)`` of each raw record in a Kafka message: the lines of an NDJSON batch
    message (:mod:`schemas.framing`), else the message value as item 0. An empty batch is
    one empty record, so it is dead-lettered rather than silently skipped."""
    if framing.is_batch(msg.headers):
        lines = framing.split(msg.value)
        if lines:
            return list(enumerate(lines))
    return [(0, msg.value)]


def steps_of(events: list[Any], max_records: int = BATCH_MAX_RECORDS) -> list[list[Any]]:
    """``events`` (Faust events, in order) cut into runs of whole messages holding at most
    ``max_records`` records each (a message larger than that is a run of its own)."""
    runs: list[list[Any]] = []
    run: list[Any] = []
    n = 0
    for fe in events:
        msg = fe.message
        k = msg.value.count(b"\n") + 1 if msg.value and framing.is_batch(msg.headers) else 1
        if run and n + k > max_records:
            runs.append(run)
            run, n = [], 0
        run.append(fe)
        n += k
    if run:
        runs.append(run)
    return runs


@dataclass(frozen=True)
class Outputs:
    """Where the processor writes, and the producer that writes there."""

    producer: BatchOutput
    enriched: str
    trajectory_state: str
    dead_letters: str
    outcomes: str = ""


class BatchProcessor:
    """Runs one batch of Faust events through validate -> dedupe -> join -> produce -> mark.

    Outputs go through :class:`BatchOutput` (librdkafka). Before events are marked seen, the
    batch waits for the acks of its outputs *and* of the join-state changelog (Faust's
    producer, ``flush_state``): otherwise a crash could leave an early event marked seen but
    not parked, and it would never be re-emitted joined.
    """

    metrics = ProcessorMetrics()  # build_pipeline sets the worker's (registered) metrics

    def __init__(
        self,
        outputs: Outputs,
        dedupe: PersistentDedupe,
        joiner: TrajectoryJoiner,
        flush_state: Callable[[], Awaitable[None]],
        dlq_limit: DlqLimit | None = None,
        buffers: Sequence[WriteBack] = (),
        rules: RuleStage | None = None,
    ) -> None:
        self.buffers = buffers
        self.rules = rules
        # batches and timer sweeps take turns: both touch the join state and the outputs
        self.lock = asyncio.Lock()
        self.out = outputs
        self.dedupe = dedupe
        self.joiner = joiner
        self.flush_state = flush_state
        self.dlq_limit = dlq_limit or DlqLimit()
        self.dead_letters = 0
        #: batches completed (a progress count for :mod:`.stall`)
        self.batches_done = 0

    async def process(self, events: list[EventT]) -> None:
        async with self.lock:
            await self._process(events)
        self.batches_done += 1

    async def _process(self, events: list[EventT]) -> None:
        accepted: list[tuple[int, int, Seen]] = []
        started = utc_now()  # one clock read per batch: the event-time check's reference too
        processed_at = encode_timestamp(started)
        now = started.timestamp()
        joiner = self.joiner
        joiner.open_batch()
        try:
            self._run(events, accepted, processed_at, now, started)
        except BaseException:
            joiner.abandon_batch()
            raise
        for event, event_json in joiner.close_batch():  # could not be parked: out unjoined
            self._send_encoded(event, event_json, None, VERSION_UNJOINED, processed_at)
        await self._flush()
        by_partition = {fe.message.partition: fe for fe in events}
        self.dedupe.mark_seen(accepted, lambda p: as_current(by_partition[p]))

    def _run(
        self,
        events: list[EventT],
        accepted: list[tuple[int, int, Seen]],
        processed_at: bytes,
        now: float,
        started: datetime,
    ) -> None:
        """The batch's records in order: validate, dedupe, join, send (no waiting).
        ``started``: when the batch began, the upper event-time bound's reference (a batch
        takes seconds at most; the bound allows hours ahead)."""
        out = self.out
        in_flight: set[bytes] = set()
        joiner = self.joiner
        rules = self.rules
        admit = self.dedupe.window.admit
        for fe in events:
            msg = fe.message
            partition = msg.partition
            # as_current(fe), without a context manager per message
            token = _current_event.set(weakref.ref(fe))
            try:
                for item, value in records_of(msg):
                    record = self._validate(msg, value, item, started)
                    if record is None:
                        continue
                    if isinstance(record, TRAJECTORY_TYPES):
                        applied = joiner.apply_trajectory_encoded(record, partition, now)
                        out.producer.send_framed(
                            out.trajectory_state, partition, record.routing_key.encode(),
                            applied.state_json,
                        )  # fmt: skip
                        if rules is not None:
                            rules.observe_trajectory(applied.state.trajectory)
                        for event, event_json in applied.late:
                            self._send_encoded(
                                event, event_json, applied.trajectory_json, VERSION_JOINED,
                                processed_at, partition,
                            )  # fmt: skip
                        continue
                    seen = admit(record, in_flight)
                    if seen is None:
                        continue  # a duplicate
                    # seen once output *or* parked: both are durable after the flush below
                    accepted.append((partition, msg.offset, seen))
                    joined = joiner.join_encoded(record, partition, now, value)
                    if rules is not None:  # state written under this event's partition
                        rules.observe(to_model(record))
                    if joined is None:
                        continue  # held: staged in this batch, then parked
                    # the validated event as received: no re-serialisation per output
                    self._send_encoded(
                        record, value, joined[0], joined[1], processed_at, partition
                    )
            finally:
                _current_event.reset(token)

    def _send_encoded(
        self,
        event: AnyEvent,
        event_json: bytes | None,
        trajectory_json: bytes | None,
        version: int,
        processed_at: bytes,
        partition: int | None = None,
    ) -> None:
        """One enriched event out, assembled from JSON already serialised (``event_json``:
        the event as received; None: encoded here). ``partition``: the source partition,
        whose outputs are framed together (None: a message of its own)."""
        body = event_json if event_json is not None else encode(to_model(event))
        value = encode_enriched(body, trajectory_json, version, processed_at)
        key = event.routing_key.encode()
        if partition is None:
            self.out.producer.send(self.out.enriched, key, value)
        else:
            self.out.producer.send_framed(self.out.enriched, partition, key, value)

    def _send_outcomes(self) -> None:
        """The rule stage's new, changed and retracted outcomes of this batch."""
        if self.rules is None:
            return
        for outcome in self.rules.drain():
            self.out.producer.send(self.out.outcomes, outcome.outcome_id.encode(), encode(outcome))

    async def _flush(self) -> None:
        """Outputs first, then the join and rule state that says they went out.

        1. the outputs (enriched events, trajectory states, outcomes, dead letters), acked;
        2. then the table buffers' changelog records (parked events released or put, closed
           trajectories, rule state), acked.

        A crash between the two leaves state that says "not out yet": the replay sends those
        outputs again and ClickHouse absorbs the repeat. In one flush, librdkafka could get
        the tombstone of a released parked event acked and not the event itself: a crash
        there lost the event, as its raw offset was committed in an earlier batch.
        Raises if the broker refused: the worker crashes and the batch replays.
        """
        self._send_outcomes()  # before the state buffers: drain writes the rule state
        await self.out.producer.flush()
        for buffer in self.buffers:
            buffer.flush()  # one changelog record per touched key
        await asyncio.gather(self.out.producer.flush(), self.flush_state())

    async def sweep(self, partitions: set[int], *, idle: bool) -> tuple[int, int]:
        """Timer work on the partitions this worker owns: send events held past the grace
        period (unjoined), and with ``idle`` close and forget idle trajectories. Returns
        (events sent, trajectories closed)."""
        async with self.lock:
            now = time.time()
            late = self.joiner.sweep_pending(now, partitions)
            closed = self.joiner.sweep_idle(now, partitions) if idle else []
            if not late and not closed and not any(b.pending for b in self.buffers):
                return 0, 0
            for enriched in late:
                self._send_enriched(enriched)
            for state in closed:
                key = state.trajectory.routing_key.encode()
                self.out.producer.send(self.out.trajectory_state, key, encode(state))
            await self._flush()
            return len(late), len(closed)

    def _validate(
        self, msg: Any, value: bytes | None, item: int, now: datetime
    ) -> RawRecord | FastRecord | None:
        try:
            record = validate(
                value, topic=msg.topic, partition=msg.partition, offset=msg.offset, item=item,
                now=now,
            )  # fmt: skip
            self.dlq_limit.record(True)
            return record
        except InvalidMessage as exc:
            self.dlq_limit.record(False, exc.reason)  # raises in a poison-message storm
            self.metrics.dead_letter(exc.error_type)
            self.dead_letters += 1
            log.warning("dead-lettered %s", exc)
            letter = dead_letter_for(exc, msg.key, value)
            self.out.producer.send(self.out.dead_letters, msg.key, encode(letter))
            return None

    def _send_enriched(self, enriched: EnrichedEvent) -> None:
        key = enriched.event.routing_key.encode()
        self.out.producer.send(self.out.enriched, key, encode(enriched))


def rule_stage(
    settings: Settings, state: PartitionPinned, trajectories: Any
) -> RuleStage:
    """The rule stage on the hot-reloaded control plane (a broken file stops the worker at
    start; a broken new version is rejected and the old one keeps running)."""
    from stream_processors.control_plane import ControlPlaneWatcher

    assert settings.control_plane is not None
    watcher = ControlPlaneWatcher(settings.control_plane)
    watcher.start()  # polls the file every 2 s
    log.info(
        "rule stage on control plane %s version %s", settings.control_plane,
        watcher.current.version,
    )  # fmt: skip
    return RuleStage(lambda: watcher.current, state, trajectories=trajectories)


def build_pipeline(
    app: faust.App, settings: Settings, metrics: ProcessorMetrics | None = None
) -> BatchProcessor:
    """Declare topics, tables and the agent on ``app``; return the processor (for stats).
    ``metrics``: counters registered in the worker's registry (None: not exported)."""
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
        outcomes=topics.outcomes,
    )
    out = outputs.producer
    seen = app.Table("dedupe-window", partitions=n, key_type=str, value_type=bytes)
    window = DedupeWindow(window_s=settings.dedupe_window_s)
    dedupe = PersistentDedupe(seen, window, Changelog(seen, out))
    trajectory_table = app.Table("trajectories", partitions=n, key_type=str)
    trajectories = WriteBack(trajectory_table, Changelog(trajectory_table, out))
    pending_table = app.Table("pending-events", partitions=n, key_type=str)
    parked = WriteBack(pending_table, Changelog(pending_table, out))
    joiner = TrajectoryJoiner(
        trajectories,
        parked,
        grace_s=settings.join_grace_s,
        idle_timeout_s=settings.trajectory_idle_timeout_s,
    )
    limit = DlqLimit(settings.dlq_max_ratio or None)
    buffers = [trajectories, parked]
    rules = None
    if settings.control_plane is not None:
        rule_table = app.Table("rule-state", partitions=n, key_type=str)
        rule_state = WriteBack(rule_table, Changelog(rule_table, out))
        buffers.append(rule_state)
        raw_names = set(topics.raw)

        def owned() -> set[int]:
            return {tp.partition for tp in app.assignor.assigned_actives()
                    if tp.topic in raw_names}  # fmt: skip

        rules = rule_stage(
            settings, PartitionPinned(rule_state, owned=owned), joiner.trajectory_for
        )
    processor = BatchProcessor(
        outputs, dedupe, joiner, app.producer.flush, limit, buffers=buffers, rules=rules
    )
    source = raw_topic(*topics.raw)
    processor.metrics = metrics or ProcessorMetrics()

    idle_every = max(1, int(settings.trajectory_idle_timeout_s // 60) or 1)
    ticks = 0

    @app.timer(interval=settings.join_sweep_interval_s)  # type: ignore[untyped-decorator]
    async def _sweep_join_state() -> None:
        nonlocal ticks
        ticks += 1
        raw = set(topics.raw)
        owned = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic in raw}
        if owned:
            await processor.sweep(owned, idle=ticks % idle_every == 0)

    @seen.on_recover
    async def _rebuild_dedupe_window() -> None:  # after every recovery: restart, rebalance
        loaded = dedupe.rebuild()
        log.info("dedupe window rebuilt: %d events remembered", loaded)

    @pending_table.on_recover
    async def _recover_join_timers() -> None:  # after every recovery: restart, rebalance
        async with processor.lock:  # batches and sweeps use what this rebuilds
            traces = joiner.recover()
        log.info("join state recovered: %d traces with parked events", traces)

    # an agent crash (e.g. undeliverable output) stops the worker: its partitions replay
    # from the last commit on the next owner instead of continuing past a gap
    @app.agent(source, name="meterline-process", supervisor_strategy=CrashingSupervisor)
    async def process(stream: Any) -> None:  # faust.Stream: take_events is not on StreamT
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            # each step flushes and marks its own events; Faust acks the take after all
            try:
                for batch in steps_of(list(events)):
                    with processor.metrics.batch(len(batch)):
                        await processor.process(batch)
            except BaseException as exc:  # Faust acks the whole take anyway: commit no more
                freeze = getattr(app.consumer, "freeze_commits", None)
                if freeze is not None:
                    freeze(f"the agent stopped mid-take ({type(exc).__name__}: {exc})")
                raise

    return processor

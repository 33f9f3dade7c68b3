"""The processor chain, read top to bottom like the diagram:

    raw topics (actions, telemetry, trajectories; keyed by trace_id)
      -> unframe            a batch message (NDJSON) is split into its records
      -> validate           invalid -> dead-letter topic (original bytes, reason, offset)
      -> dedupe             (project, event_id) already emitted -> dropped
      -> join               by trace_id against the trajectory table
      -> price              llm_calls from the price book (stream_processors/pricing)
      -> rules              (with a control plane) outcomes of the trajectory rules
      -> produce            enriched events / trajectory states / outcomes, wait for acks
      -> state              join/rule table changelogs, only after the outputs, wait for acks
      -> mark seen          only now, so a crash before the acks replays instead of losing

Sizes: every output is checked against its topic's ``max.message.bytes`` before it is
produced (:mod:`meterline.stream_processors.sizes`). An event whose enriched output would not fit is
dead-lettered (``output_too_large``) and not marked seen, so it can be replayed once the
topic accepts it; the state is bounded so that its changelog records fit.

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

from meterline.ops.admin import changelog_config, changelog_topics, ensure_topics, topic_config
from meterline.schemas import (
    VERSION_JOINED,
    VERSION_UNJOINED,
    EnrichedEvent,
    RawRecord,
    encode,
    framing,
    utc_now,
)
from meterline.schemas.codec import encode_enriched, encode_timestamp
from meterline.schemas.fast_decode import TRAJECTORY_TYPES, AnyEvent, FastRecord, to_model
from meterline.settings import Settings
from meterline.stream_processors.errors import InvalidMessage
from meterline.stream_processors.faust_layer.output import MAX_MESSAGE_BYTES, BatchOutput
from meterline.stream_processors.metrics import ProcessorMetrics
from meterline.stream_processors.pricing import PricingStep
from meterline.stream_processors.rules.stage import RuleStage
from meterline.stream_processors.sizes import (
    KAFKA_DEFAULT_MAX_MESSAGE_BYTES,
    OutputTooLarge,
    StateBounds,
    TopicLimits,
    read_limits,
)
from meterline.stream_processors.state.changelog import Changelog
from meterline.stream_processors.state.dedupe import PersistentDedupe
from meterline.stream_processors.state.writeback import PartitionPinned, WriteBack, as_current
from meterline.stream_processors.steps.dedupe import DedupeWindow, Seen
from meterline.stream_processors.steps.join import TrajectoryJoiner
from meterline.stream_processors.steps.quarantine import QUARANTINED, ProjectGuard, project_of
from meterline.stream_processors.steps.validate import (
    DEFAULT_MAX_RECORD_BYTES,
    dead_letter_for,
    validate,
)

log = logging.getLogger(__name__)

EventT = _EventT[bytes]

BATCH_MAX = 2_000
#: How long a take waits for ``BATCH_MAX`` messages before it goes with what it has. Faust
#: counts it from the start of each take, and a take of SDK batch messages rarely reaches
#: ``BATCH_MAX``: every take waited the whole window (measured: 0.50 s idle before each take
#: of 137-454 messages in the 300,000-event benchmark, with more fetched and waiting).
BATCH_WITHIN_S = 0.1
#: ``error_type`` of an input whose output would exceed its topic's ``max.message.bytes``.
OUTPUT_TOO_LARGE = "output_too_large"

#: Records per processing step. A take of ``BATCH_MAX`` SDK-framed messages holds up to
#: ~1,000,000 records: one step over all of them would hold their outputs, parked events and
#: changelog records in memory at once and wait for ~1,000,000 acks within one flush timeout.
#: Large enough that a trajectory usually shares a step with its early events (staging).
BATCH_MAX_RECORDS = 50_000


def records_of(msg: Any) -> list[tuple[int, bytes | None]]:
    """``(item, bytes)`` of each raw record in a Kafka message: the lines of an NDJSON batch
    message (:mod:`meterline.schemas.framing`), else the message value as item 0. An empty batch is
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
    outcome_corrections: str = ""


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
        guard: ProjectGuard | None = None,
        buffers: Sequence[WriteBack] = (),
        rules: RuleStage | None = None,
        pricing: PricingStep | None = None,
    ) -> None:
        self.buffers = buffers
        self.rules = rules
        #: prices every llm_call on its way out (None: events leave unpriced)
        self.pricing = pricing
        # batches and timer sweeps take turns: both touch the join state and the outputs
        self.lock = asyncio.Lock()
        self.out = outputs
        self.dedupe = dedupe
        self.joiner = joiner
        self.flush_state = flush_state
        self.guard = guard or ProjectGuard()
        self.dead_letters = 0
        #: outputs not produced for size and not dead-lettered either (an unjoined event
        #: over a topic limit below the record limit; logged as errors)
        self.too_large = 0
        # a dead letter keeps at most this much of the rejected bytes (base64 in the letter)
        limits = getattr(outputs.producer, "limits", None)  # None: a stand-in output
        limit = limits[outputs.dead_letters] if limits is not None else MAX_MESSAGE_BYTES
        self.dead_letter_payload = min(DEFAULT_MAX_RECORD_BYTES, (limit - 8_192) * 3 // 4)
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
        self.dedupe.window.advance(now)  # the batch's admissions share one bucket
        joiner = self.joiner
        joiner.open_batch()
        try:
            self._run(events, accepted, processed_at, now, started)
        except BaseException:
            joiner.abandon_batch()
            raise
        for event, event_json in joiner.close_batch():  # could not be parked: out unjoined
            self._send_unjoined(event, event_json, processed_at)
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
                        self._trajectory(record, msg, value, item, now, processed_at)
                        continue
                    seen = admit(record, in_flight)
                    if seen is None:
                        continue  # a duplicate
                    joined = joiner.join_encoded(record, partition, now, value)
                    if joined is not None:
                        try:  # the validated event as received: no re-serialisation
                            self._send_encoded(
                                record, value, joined[0], joined[1], processed_at, partition
                            )
                        except OutputTooLarge as exc:  # not seen: replayable once it fits
                            joiner.retract(joined[1])
                            self._dead_letter_output(exc, msg, value, item)
                            continue
                    # seen once output *or* parked: both are durable after the flush below
                    accepted.append((partition, msg.offset, seen))
                    if rules is not None:  # state written under this event's partition
                        rules.observe(to_model(record))
            finally:
                _current_event.reset(token)

    def _trajectory(
        self, record: Any, msg: Any, value: bytes | None, item: int, now: float,
        processed_at: bytes,
    ) -> None:  # fmt: skip
        """Merge a trajectory record, send its state and the events it releases. An event
        whose joined output is too large goes out unjoined instead (it was parked, so it is
        seen: a dead letter of it could not be replayed)."""
        out, partition = self.out, msg.partition
        applied = self.joiner.apply_trajectory_encoded(record, partition, now)
        try:
            out.producer.send_framed(
                out.trajectory_state, partition, record.routing_key.encode(), applied.state_json
            )
        except OutputTooLarge as exc:  # bounded state makes this unreachable; never a crash
            self._dead_letter_output(exc, msg, value, item)
        if self.rules is not None:
            self.rules.observe_trajectory(applied.state.trajectory)
        for event, event_json in applied.late:
            try:
                self._send_encoded(
                    event, event_json, applied.trajectory_json, VERSION_JOINED, processed_at,
                    partition,
                )  # fmt: skip
            except OutputTooLarge as exc:
                log.error("event %s out unjoined: its joined output is too large (%s)",
                          event.event_id, exc)  # fmt: skip
                self._send_unjoined(event, event_json, processed_at)

    def _send_unjoined(self, event: AnyEvent, event_json: bytes | None, at: bytes) -> None:
        """An unjoined event out; one over its topic's limit (only possible with a limit
        below the record limit) is logged and counted instead of crashing the worker."""
        try:
            self._send_encoded(event, event_json, None, VERSION_UNJOINED, at)
        except OutputTooLarge as exc:
            self.too_large += 1
            log.error("event %s not produced: %s", event.event_id, exc)

    def _dead_letter_output(
        self, exc: OutputTooLarge, msg: Any, value: bytes | None, item: int
    ) -> None:
        """Dead-letter the input whose output would exceed its topic's limit."""
        invalid = InvalidMessage(
            str(exc), error_type=OUTPUT_TOO_LARGE, topic=msg.topic, partition=msg.partition,
            offset=msg.offset, item=item,
        )  # fmt: skip
        self._dead_letter(invalid, msg.key, value)

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
        pricing = self.pricing
        priced = pricing.price_json(event) if pricing is not None else None
        value = encode_enriched(body, trajectory_json, version, processed_at, priced)
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

    def _send_corrections(self) -> None:
        if self.rules is None:
            return
        for c in self.rules.corrections():
            key = f"{c.project}\x1f{c.trace_id}".encode()
            self.out.producer.send(self.out.outcome_corrections, key, encode(c))

    async def _flush(self) -> None:
        """Outputs first, then the join and rule state that says they went out.

        1. the outputs (enriched events, trajectory states, outcomes, dead letters), acked;
        2. then the rule stage's correction requests, so a request is in the log only after
           the late events it is about (the correction path waits for what precedes it);
        3. with them the table buffers' changelog records (parked events released or put,
           closed trajectories, rule state), acked.

        A crash between the two leaves state that says "not out yet": the replay sends those
        outputs again and ClickHouse absorbs the repeat. In one flush, librdkafka could get
        the tombstone of a released parked event acked and not the event itself: a crash
        there lost the event, as its raw offset was committed in an earlier batch.
        Raises if the broker refused: the worker crashes and the batch replays.
        """
        self._send_outcomes()  # before the state buffers: drain writes the rule state
        await self.out.producer.flush()
        self._send_corrections()
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
                try:
                    self._send_enriched(enriched)
                except OutputTooLarge as exc:
                    self.too_large += 1
                    log.error("event %s not produced: %s", enriched.event.event_id, exc)
            for state in closed:
                key = state.trajectory.routing_key.encode()
                try:
                    self.out.producer.send(self.out.trajectory_state, key, encode(state))
                except OutputTooLarge as exc:  # bounded state: unreachable, never a crash
                    self.too_large += 1
                    log.error("closing state of %s not produced: %s", key, exc)
            await self._flush()
            return len(late), len(closed)

    def _validate(
        self, msg: Any, value: bytes | None, item: int, now: datetime
    ) -> RawRecord | FastRecord | None:
        """The record, or None when it was dead-lettered: invalid (its own reason), or valid
        but of a quarantined project (:data:`QUARANTINED`, original bytes kept)."""
        try:
            record = validate(
                value, topic=msg.topic, partition=msg.partition, offset=msg.offset, item=item,
                now=now,
            )  # fmt: skip
        except InvalidMessage as exc:
            self.guard.invalid(project_of(value), exc.reason)  # may quarantine the project
            self._dead_letter(exc, msg.key, value)
            return None
        quarantine = self.guard.valid(record.project)
        if quarantine is None:
            return record
        held = InvalidMessage(
            quarantine.reason, error_type=QUARANTINED, topic=msg.topic,
            partition=msg.partition, offset=msg.offset, item=item,
        )  # fmt: skip
        self._dead_letter(held, msg.key, value, stage="quarantine", quiet=True)
        return None

    def _dead_letter(
        self, exc: InvalidMessage, key: bytes | None, value: bytes | None, *,
        stage: str = "validate", quiet: bool = False,
    ) -> None:  # fmt: skip
        """``quiet``: no log line per record (a quarantine is logged once, when it starts)."""
        self.metrics.dead_letter(exc.error_type)
        self.dead_letters += 1
        if not quiet:
            log.warning("dead-lettered %s", exc)
        letter = dead_letter_for(exc, key, value, self.dead_letter_payload, stage=stage)
        self.out.producer.send(self.out.dead_letters, key, encode(letter))

    def _send_enriched(self, enriched: EnrichedEvent) -> None:
        if self.pricing is not None and enriched.pricing is None:
            priced = self.pricing.pricing(enriched.event)
            if priced is not None:
                enriched = enriched.model_copy(update={"pricing": priced})
        key = enriched.event.routing_key.encode()
        self.out.producer.send(self.out.enriched, key, encode(enriched))


def prepare_topics(settings: Settings) -> TopicLimits:
    """Create the worker's table changelog topics (``max.message.bytes`` and replication
    factor as meterline's topics; compacted) and read the size limit of every topic it
    writes to from the broker. A topic the broker reports no limit for gets Kafka's default."""
    assert settings.kafka_bootstrap
    access = settings.kafka_client_config()
    changelogs = changelog_topics(settings.app_id)
    ensure_topics(
        settings.kafka_bootstrap, changelogs, settings.partitions,
        replication_factor=settings.replication_factor, config=access,
        topic_configs=changelog_config(settings.max_message_bytes),
    )  # fmt: skip
    from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap, **access})
    topics = settings.topics
    limits = read_limits(admin, [*topics.sink_inputs, *changelogs], KAFKA_DEFAULT_MAX_MESSAGE_BYTES)
    log.info("topic size limits (max.message.bytes): %s", limits.limits)
    return limits


def control_plane_watcher(settings: Settings) -> Any:
    """The hot-reloaded control plane the rule stage and the price book read (None: no
    file configured). A broken file stops the worker at start; a broken new version is
    rejected and the old one keeps running."""
    from meterline.stream_processors.control_plane import ControlPlaneWatcher

    if settings.control_plane is None:
        return None
    watcher = ControlPlaneWatcher(settings.control_plane)
    watcher.start()  # polls the file every 2 s
    return watcher


def pricing_step(watcher: Any) -> PricingStep:
    """The pricing step on the watcher's control plane (None: the catalog alone)."""
    step = PricingStep((lambda: watcher.current) if watcher is not None else None)
    log.info("price book %s", step.book.version)
    return step


def rule_stage(
    settings: Settings, watcher: Any, state: PartitionPinned, trajectories: Any, *,
    max_state_bytes: int,
) -> RuleStage:  # fmt: skip
    """The rule stage on the hot-reloaded control plane."""
    log.info(
        "rule stage on control plane %s version %s", settings.control_plane,
        watcher.current.version,
    )  # fmt: skip
    return RuleStage(
        lambda: watcher.current, state, trajectories=trajectories,
        max_events_per_trace=settings.rule_max_events, end_grace_s=settings.rule_end_grace_s,
        idle_s=settings.rule_idle_s, forget_s=settings.rule_forget_s,
        max_state_bytes=max_state_bytes,
    )  # fmt: skip


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
    limits = prepare_topics(settings)
    # every state record within the smallest limit of the topics state is written to
    tables = changelog_topics(settings.app_id)
    bounds = StateBounds.within(limits.smallest([*tables, topics.trajectory_state]))
    changelog_extra = topic_config(settings.max_message_bytes)  # as prepare_topics made them
    outputs = Outputs(
        producer=BatchOutput(settings.kafka_bootstrap, limits=limits),
        enriched=topics.enriched,
        trajectory_state=topics.trajectory_state,
        dead_letters=topics.dead_letters,
        outcomes=topics.outcomes,
        outcome_corrections=topics.outcome_corrections,
    )
    out = outputs.producer
    def table(name: str, **kw: Any) -> faust.types.TableT[Any, Any]:
        return app.Table(
            name, partitions=n, key_type=str, extra_topic_configs=changelog_extra, **kw
        )

    seen = table("dedupe-window", value_type=bytes)
    window = DedupeWindow(window_s=settings.dedupe_window_s)
    dedupe = PersistentDedupe(
        seen, window, Changelog(seen, out), max_digests=bounds.dedupe_digests
    )
    trajectory_table = table("trajectories")
    trajectories = WriteBack(trajectory_table, Changelog(trajectory_table, out))
    pending_table = table("pending-events")
    parked = WriteBack(pending_table, Changelog(pending_table, out))
    joiner = TrajectoryJoiner(
        trajectories,
        parked,
        grace_s=settings.join_grace_s,
        idle_timeout_s=settings.trajectory_idle_timeout_s,
        retention_s=settings.trajectory_retention_s,
        bounds=bounds,
    )
    guard = ProjectGuard(settings.dlq_max_ratio or None, settings.quarantine_s)
    buffers = [trajectories, parked]
    rules = None
    watcher = control_plane_watcher(settings)
    if watcher is not None:
        rule_table = table("rule-state")
        rule_state = WriteBack(rule_table, Changelog(rule_table, out))
        buffers.append(rule_state)
        raw_names = set(topics.raw)

        def owned() -> set[int]:
            return {tp.partition for tp in app.assignor.assigned_actives()
                    if tp.topic in raw_names}  # fmt: skip

        rules = rule_stage(
            settings, watcher, PartitionPinned(rule_state, owned=owned), joiner.trajectory_for,
            max_state_bytes=bounds.rule_bytes,
        )
    processor = BatchProcessor(
        outputs, dedupe, joiner, app.producer.flush, guard, buffers=buffers, rules=rules,
        pricing=pricing_step(watcher),
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

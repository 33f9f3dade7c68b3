"""The processor chain, free of Faust, read top to bottom like the diagram:

    raw topics (actions, telemetry, trajectories; keyed by trace_id)
      -> unframe            a batch message (NDJSON) is split into its records
      -> validate           invalid -> dead-letter topic (original bytes, reason, offset)
      -> dedupe             (project, event_id) already emitted -> dropped
      -> join               by trace_id against the trajectory table
      -> price              llm_calls from the price book (stream_processors/pricing)
      -> rules              (with a control plane) outcomes of the trajectory rules
      -> produce            enriched events / trajectory states / outcomes (queued, no wait)

and then, per step of a take, always in this order (:meth:`BatchProcessor.checkpoint`):

    1. flush      the outputs, acked; then the rule stage's correction requests
    2. state      the join/rule table changelogs, acked: state that says "this went out"
                  is never durable before the output it stands for
    3. mark seen  the step's events enter the dedupe window only now, so a crash before
                  the acks replays instead of losing
    4. commit     not here: the worker's agent (:mod:`.worker`) moves on, Faust acknowledges
                  the take, and only acknowledged offsets are committed
                  (:mod:`.faust_layer.commits`)

A crash before 4 replays the step from the last commit; the repeated outputs are absorbed
downstream. A broker refusal raises out of the checkpoint: the worker crashes and replays.

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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

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
from meterline.stream_processors.errors import InvalidMessage
from meterline.stream_processors.faust_layer.output import MAX_MESSAGE_BYTES, BatchOutput
from meterline.stream_processors.metrics import ProcessorMetrics
from meterline.stream_processors.pricing import PricingStep
from meterline.stream_processors.rules.stage import RuleStage
from meterline.stream_processors.sizes import OutputTooLarge
from meterline.stream_processors.state.dedupe import PersistentDedupe
from meterline.stream_processors.state.writeback import (
    WriteBack,
    as_current,
    reset_current,
    set_current,
)
from meterline.stream_processors.steps.dedupe import Seen
from meterline.stream_processors.steps.join import TrajectoryJoiner
from meterline.stream_processors.steps.quarantine import QUARANTINED, ProjectGuard, project_of
from meterline.stream_processors.steps.validate import (
    DEFAULT_MAX_RECORD_BYTES,
    dead_letter_for,
    validate,
)

log = logging.getLogger(__name__)



class EventT(Protocol):
    """What the chain reads of a consumed record's event (a Faust event in the worker):
    ``message`` with ``topic``, ``partition``, ``offset``, ``key``, ``value``, ``headers``."""

    @property
    def message(self) -> Any: ...


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
    """Runs one step of a take (events in order) through the chain and its checkpoint.

    Outputs and the table changelogs go through :class:`BatchOutput` (librdkafka);
    ``flush_state`` waits for whatever else the tables sent (Faust's producer). ``lock``:
    batches and timer sweeps take turns.
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
        await self.checkpoint(events, accepted)

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
            token = set_current(fe)  # as_current(fe), without a context manager per message
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
                reset_current(token)

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

    async def checkpoint(
        self, events: Sequence[EventT] = (), accepted: list[tuple[int, int, Seen]] | None = None
    ) -> None:
        """The end of a step (or of a timer sweep, which marks nothing), in the order of the
        module docstring. In one flush, librdkafka could get a released parked event's
        tombstone acked and not the event itself; hence two.

        Raises:
            OutputDeliveryError: the broker refused (the worker crashes, the step replays).
        """
        # 1. flush: the outputs, acked (outcomes drained first: draining writes rule state);
        #    then the correction requests, after the late events they are about
        self._send_outcomes()
        await self.out.producer.flush()
        self._send_corrections()
        # 2. state: the table buffers' changelog records (one per touched key), acked
        for buffer in self.buffers:
            buffer.flush()
        await asyncio.gather(self.out.producer.flush(), self.flush_state())
        # 3. mark seen, each event's digest under its source partition
        if accepted:
            by_partition = {fe.message.partition: fe for fe in events}
            self.dedupe.mark_seen(accepted, lambda p: as_current(by_partition[p]))
        # 4. commit: the worker's agent, once this returns (module docstring)

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
            await self.checkpoint()
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

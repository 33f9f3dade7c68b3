"""trajectory-style product telemetry: the frozen ``TelemetryEvent`` dataclass, ``push_events``,
``TraceContext.event(...)`` and ``upload_trace``.

The SDK's ``TelemetryEvent`` (this module) is what callers build;
``meterline.schemas.TelemetryEvent``
is the wire model it maps to (``to_wire``): same field names, ``source`` as given.

``push_events`` is a batch call and does wait: it validates every event (invalid ones are
skipped with a logged warning and one message each in ``errors``), sends valid events in
chunks of ``chunk_size`` and waits for the broker's acknowledgement of each chunk, re-sending
only the unacknowledged events up to ``max_retries`` times. ``pushed`` counts acknowledged
events; an event still unacknowledged after the retries is neither pushed nor skipped and
gets one message in ``errors``. Re-sent events keep their ``event_id``, so the pipeline's
dedupe counts them once.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError
from pydantic import ValidationError

import meterline.schemas
from meterline.producers.config import current_client, get_client
from meterline.producers.errors import RecordTooLarge
from meterline.producers.safety import swallow
from meterline.producers.sdk import MeterlineClient
from meterline.producers.unconfigured import UnconfiguredClient
from meterline.schemas import RawRecord, TrajectoryRecord, TrajectoryStatus, describe

log = logging.getLogger(__name__)
_NO_REPORT: Any = object()


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True)
class TelemetryEvent:
    """A product telemetry event. Only ``event_type`` and ``session_id`` are required.

    ``event_id`` is the idempotency key: set it from your own primary key so duplicate pushes
    are counted once.
    """

    event_type: str
    session_id: str
    properties: dict[str, Any] = field(default_factory=dict)
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    timestamp: str = field(default_factory=_now_iso)
    user_id: str | None = None
    trajectory_id: str | None = None
    trace_id: str | None = None
    source: str = "sdk"
    metadata: dict[str, Any] | None = None

    def to_wire(
        self, project: str = "default", agent_id: str | None = None
    ) -> meterline.schemas.TelemetryEvent:
        """The ``meterline.schemas.TelemetryEvent`` for this event (raises ``ValidationError``)."""
        return meterline.schemas.TelemetryEvent(
            project=project,
            event_id=self.event_id,
            event_type=self.event_type,
            session_id=self.session_id,
            properties=self.properties,
            timestamp=self.timestamp,  # type: ignore[arg-type]  # ISO string, parsed
            user_id=self.user_id,
            trajectory_id=self.trajectory_id,
            trace_id=self.trace_id,
            agent_id=agent_id,
            source=self.source,
            metadata=self.metadata or {},
        )


@dataclass(frozen=True)
class PushResult:
    pushed: int = 0  # events acknowledged by the broker
    skipped: int = 0  # events dropped client-side as invalid
    errors: list[str] = field(default_factory=list)  # one message per invalid/undelivered event


def _validate(
    event: object, project: str, agent_id: str | None
) -> meterline.schemas.TelemetryEvent:
    if not isinstance(event, TelemetryEvent):
        raise TypeError(f"expected TelemetryEvent, got {type(event).__name__}")
    if not isinstance(event.session_id, str) or not event.session_id.strip():
        raise ValueError("session_id: required (a non-empty string)")
    if not isinstance(event.properties, dict):
        raise ValueError("properties: must be a dict")
    return event.to_wire(project, agent_id)


def push_events(
    events: Iterable[TelemetryEvent],
    organization_id: str | None = None,
    chunk_size: int = 1000,
    max_retries: int = 3,
    *,
    client: MeterlineClient | None = None,
    timeout_s: float = 30.0,
) -> PushResult:
    """Validate, chunk, send and confirm a batch of events (see the module docstring).

    ``organization_id`` is only logged (attribution); the project comes from the client.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    try:
        c = client or get_client()
    except Exception as err:  # strict mode re-raises NotConfigured here
        swallow("push_events()", err)
        c = current_client()
    if isinstance(c, UnconfiguredClient):
        events = list(events)
        c.stats.bump("dropped", c.drop_reason)
        c.warn_once()
        return PushResult(0, 0, [f"{len(events)} event(s) not sent: {c.drop_reason}"])
    valid: list[RawRecord] = []
    errors: list[str] = []
    for i, event in enumerate(events):
        try:
            valid.append(c.prepare(_validate(event, c.project, c.agent_id)))
        except (ValidationError, TypeError, ValueError) as exc:
            reason = describe(exc) if isinstance(exc, ValidationError) else str(exc)
            eid = getattr(event, "event_id", "?")
            errors.append(f"event {i} ({eid}): {reason}")
            log.warning("push_events: skipped invalid event %d (%s): %s", i, eid, reason)
    skipped = len(errors)
    if organization_id:
        log.info("push_events: %d event(s) for organization %s", len(valid), organization_id)
    pushed = 0
    for start in range(0, len(valid), chunk_size):
        ok, failed = _send_chunk(c, valid[start : start + chunk_size], max_retries, timeout_s)
        pushed += ok
        errors.extend(failed)
    return PushResult(pushed=pushed, skipped=skipped, errors=errors)


def _send_chunk(
    c: MeterlineClient, chunk: list[RawRecord], max_retries: int, timeout_s: float
) -> tuple[int, list[str]]:
    """Send ``chunk`` and wait for its delivery reports; re-send failures. (acked, errors)."""
    pending, acked = chunk, 0
    last_error: dict[int, str] = {}
    for attempt in range(max_retries + 1):
        outcome: dict[int, KafkaError | None] = {}

        def report(record: RawRecord, err: KafkaError | None, _o: dict[int, Any] = outcome) -> None:
            _o[id(record)] = err
            c.report_delivery(record, err)  # client counters and on_delivery callback

        for record in pending:
            try:
                c.sink.send(record, report)
            except Exception as exc:  # e.g. local queue full: transient, retried
                last_error[id(record)] = str(exc)
        c.sink.flush(timeout_s)
        failed = [r for r in pending if outcome.get(id(r), _NO_REPORT) is not None]
        for r in failed:
            err = outcome.get(id(r), _NO_REPORT)
            if err is not _NO_REPORT:
                last_error[id(r)] = str(err)
            last_error.setdefault(id(r), "no delivery report before timeout")
        acked += len(pending) - len(failed)
        if not failed:
            return acked, []
        pending = failed
        if attempt < max_retries:
            time.sleep(min(0.1 * 2**attempt, 2.0))
    return acked, [
        f"event {_event_id(r)}: not delivered after {max_retries} retries: {last_error[id(r)]}"
        for r in pending
    ]


def _event_id(record: RawRecord) -> str:
    return record.trace_id if isinstance(record, TrajectoryRecord) else record.event_id


class TraceContext:
    """One agent run (trajectory) and its correlated telemetry events.

    ``event(...)`` builds a :class:`TelemetryEvent` with ``trace_id`` set and
    ``session_id = trace_id`` (override either by keyword) and keeps it for
    :func:`upload_trace`. As a context manager it stamps ``ended_at`` and the status
    (error if the block raised); it does not upload by itself.
    """

    def __init__(
        self,
        trace_id: str | None = None,
        *,
        trajectory_id: str | None = None,
        user_id: str | None = None,
        anonymous_id: str | None = None,
        agent_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.trace_id = trace_id or uuid.uuid4().hex
        self.trajectory_id = trajectory_id
        self.user_id = user_id
        self.anonymous_id = anonymous_id
        self.agent_id = agent_id
        self.metadata = dict(metadata or {})
        self.started_at = datetime.now(UTC)
        self.ended_at: datetime | None = None
        self.status = TrajectoryStatus.RUNNING
        self.events: list[TelemetryEvent] = []

    def event(
        self, event_type: str, properties: dict[str, Any] | None = None, **kwargs: Any
    ) -> TelemetryEvent:
        kwargs.setdefault("trace_id", self.trace_id)
        kwargs.setdefault("session_id", kwargs["trace_id"])
        kwargs.setdefault("user_id", self.user_id)
        kwargs.setdefault("trajectory_id", self.trajectory_id)
        ev = TelemetryEvent(event_type=event_type, properties=dict(properties or {}), **kwargs)
        self.events.append(ev)
        return ev

    def to_record(self, project: str = "default", agent_id: str | None = None) -> TrajectoryRecord:
        return TrajectoryRecord(
            project=project, trace_id=self.trace_id, trajectory_id=self.trajectory_id,
            user_id=self.user_id, anonymous_id=self.anonymous_id,
            agent_id=self.agent_id or agent_id,
            status=self.status, started_at=self.started_at, ended_at=self.ended_at,
            metadata=self.metadata,
        )

    def __enter__(self) -> TraceContext:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.ended_at = datetime.now(UTC)
        self.status = TrajectoryStatus.ERROR if exc is not None else TrajectoryStatus.SUCCESS


def trace(trace_id: str | None = None, **kwargs: Any) -> TraceContext:
    """Start a :class:`TraceContext` (use as ``with tj.trace() as t:``)."""
    return TraceContext(trace_id, **kwargs)


def upload_trace(
    trace: TraceContext,
    *,
    client: MeterlineClient | None = None,
    chunk_size: int = 1000,
    max_retries: int = 3,
    timeout_s: float = 30.0,
) -> PushResult:
    """Send the trajectory record, then its events, and wait for acknowledgement.

    Both share the Kafka key ``trace_id``, so they land on one partition in that order.
    Not transactional: the returned :class:`PushResult` reports events; a trajectory record
    that could not be delivered adds one message to ``errors``.
    """
    try:
        c = client or get_client()
    except Exception as err:
        swallow("upload_trace()", err)
        c = current_client()
    if isinstance(c, UnconfiguredClient):
        return push_events(trace.events, client=c)  # nothing sent; one error, one drop
    try:
        record = c.prepare(trace.to_record(c.project, c.agent_id))
    except RecordTooLarge as exc:  # counted and reported by prepare; the events still go
        traj_errors = [str(exc)]
    else:
        _, traj_errors = _send_chunk(c, [record], max_retries, timeout_s)
    result = push_events(
        trace.events, chunk_size=chunk_size, max_retries=max_retries, client=c,
        timeout_s=timeout_s,
    )
    return PushResult(result.pushed, result.skipped, [*traj_errors, *result.errors])

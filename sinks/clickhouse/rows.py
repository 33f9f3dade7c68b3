"""Map records to ClickHouse rows (column order = ``COLUMNS[table]``)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict

from meterline.schemas import (
    ActionEvent,
    DeadLetter,
    EnrichedEvent,
    Outcome,
    OutcomeCorrection,
    SeatCount,
    TelemetryEvent,
    TrajectoryState,
    utc_now,
)
from meterline.schemas.codec import decode_as
from meterline.schemas.common import Id
from meterline.schemas.errors import InvalidRecord
from meterline.schemas.fast_decode import FastActionEvent, FastTelemetryEvent
from meterline.schemas.versions import (
    IMPOSSIBLE_VERSION,
    computed_at_problem,
    enriched_version_problem,
    trajectory_version_problem,
)
from meterline.sinks.clickhouse.fast_decode import (
    FastEnriched,
    FastTrajectoryState,
    decode_enriched,
    decode_state,
)

COLUMNS: dict[str, Sequence[str]] = {
    "events": (
        "project",
        "event_id",
        "record_type",
        "kind",
        "name",
        "trace_id",
        "session_id",
        "trajectory_id",
        "user_id",
        "anonymous_id",
        "agent_id",
        "status",
        "timestamp",
        "started_at",
        "ended_at",
        "duration_ms",
        "model",
        "provider",
        "input_tokens",
        "output_tokens",
        "cached_tokens",
        "cost_usd",
        "error_type",
        "error_message",
        "parent_event_id",
        "source",
        "properties",
        "metadata",
        "joined",
        "version",
        "processed_at",
        "computed_cost_usd",
        "billed_cost_usd",
        "cost_source",
        "price_status",
        "price_book",
    ),
    "trajectories": (
        "project",
        "trace_id",
        "trajectory_id",
        "user_id",
        "anonymous_id",
        "agent_id",
        "status",
        "started_at",
        "ended_at",
        "timestamp",
        "metadata",
        "version",
    ),
    "dead_letters": (
        "source_topic",
        "partition",
        "offset",
        "item",
        "key",
        "payload_base64",
        "payload_preview",
        "reason",
        "error_type",
        "stage",
        "received_at",
    ),
    "outcomes": (
        "project",
        "outcome_id",
        "rule_id",
        "rule_revision",
        "rule_name",
        "config_version",
        "trace_id",
        "user_id",
        "anonymous_id",
        "event_ids",
        "value",
        "timestamp",
        "retracted",
        "computed_at",
        "version",
    ),
    "outcome_corrections": (
        "project",
        "trace_id",
        "event_id",
        "requested_at",
        "resolved",
        "resolved_at",
        "version",
    ),
    "seat_counts": (
        "project",
        "rule_id",
        "rule_name",
        "period",
        "period_start",
        "seats",
        "users",
        "computed_at",
    ),
    "display_names": ("action", "display_name", "config_version"),
}

_PREVIEW_CHARS = 1_000


def _json(value: dict[str, Any]) -> str:
    return orjson.dumps(value, default=str).decode() if value else "{}"


class TrajectoryRef(BaseModel):
    """The fields of an enriched event's trajectory that its ``events`` row uses; the rest
    of the trajectory is skipped, not validated (the trajectory itself is stored from the
    trajectory-state topic, validated whole)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    trajectory_id: Id | None = None
    user_id: Id | None = None
    anonymous_id: Id | None = None
    agent_id: Id | None = None


class SinkEnrichedEvent(EnrichedEvent):
    """:class:`~meterline.schemas.EnrichedEvent` as the sink reads it: the event is validated whole,
    the trajectory only for :class:`TrajectoryRef`'s fields: every event carries a copy of its
    trajectory, and the row reads four of its fields (figures: docs/benchmarks.md, the
    sink's section)."""

    trajectory: TrajectoryRef | None = None  # type: ignore[assignment]


def enriched_row(data: bytes) -> tuple[Any, ...]:
    """The ``events`` row of an enriched event's wire JSON: the msgspec fast path
    (:mod:`meterline.sinks.clickhouse.fast_decode`), else pydantic (:class:`SinkEnrichedEvent`).

    Raises:
        InvalidRecord: pydantic refused it too (the reason names the field), or its version
            is impossible in the processor's scheme (``impossible_version``,
            :mod:`meterline.schemas.versions`).
    """
    enriched = read_enriched(data)
    _refuse(enriched_version_problem(enriched.version))
    return event_row(enriched)


def read_enriched(data: bytes) -> FastEnriched | SinkEnrichedEvent:
    """An enriched event's wire JSON decoded (the version not checked): the msgspec fast
    path, else pydantic (raises :class:`InvalidRecord`)."""
    fast = decode_enriched(data)
    return fast if fast is not None else decode_as(SinkEnrichedEvent, data)


def _refuse(problem: str | None) -> None:
    if problem is not None:
        raise InvalidRecord(problem, error_type=IMPOSSIBLE_VERSION)


def event_row(enriched: EnrichedEvent | FastEnriched) -> tuple[Any, ...]:
    ev, traj = enriched.event, enriched.trajectory
    user_id = ev.user_id or (traj.user_id if traj else None)
    anonymous_id = ev.anonymous_id or (traj.anonymous_id if traj else None)
    agent_id = ev.agent_id or (traj.agent_id if traj else None)
    own_trajectory_id = (
        ev.trajectory_id if isinstance(ev, TelemetryEvent | FastTelemetryEvent) else None
    )
    trajectory_id = own_trajectory_id or (traj.trajectory_id if traj else None)
    if isinstance(ev, ActionEvent | FastActionEvent):
        kind, name, status = ev.kind.value, ev.name, ev.status.value
        llm = (
            ev.started_at,
            ev.ended_at,
            ev.duration_ms,
            ev.model or "",
            ev.provider or "",
            ev.input_tokens,
            ev.output_tokens,
            ev.cached_tokens,
            ev.cost_usd,
            ev.error_type or "",
            ev.error_message or "",
            ev.parent_event_id or "",
        )
    else:
        kind, name, status = "telemetry", ev.event_type, ""
        llm = (None, None, None, "", "", 0, 0, 0, 0.0, "", "", "")
    return (
        ev.project,
        ev.event_id,
        ev.type,
        kind,
        name,
        ev.trace_id or "",
        ev.session_id or "",
        trajectory_id or "",
        user_id or "",
        anonymous_id or "",
        agent_id or "",
        status,
        ev.timestamp,
        *llm,
        ev.source,
        _json(ev.properties),
        _json(ev.metadata),
        1 if traj is not None else 0,
        enriched.version,
        enriched.processed_at,
        *pricing_columns(enriched.pricing, llm[8]),
    )


def pricing_columns(pricing: Any, reported: float) -> tuple[Any, ...]:
    """The price book's columns: from the processor's ``pricing``, or (an event it did not
    price: not an llm_call, or written before the price book) the reported cost billed."""
    if pricing is None:
        return (None, reported, "reported", "", "")
    return (
        pricing.computed_cost_usd, pricing.billed_cost_usd, pricing.cost_source,
        pricing.price_status, pricing.price_book,
    )  # fmt: skip


def state_row(data: bytes) -> tuple[Any, ...]:
    """The ``trajectories`` row of a trajectory state's wire JSON: the msgspec fast path
    (:func:`~meterline.sinks.clickhouse.fast_decode.decode_state`), else pydantic.

    Raises:
        InvalidRecord: pydantic refused it too (the reason names the field), or its version
            is impossible (``impossible_version``, :mod:`meterline.schemas.versions`).
    """
    state = read_state(data)
    _refuse(trajectory_version_problem(state.version))
    return trajectory_row(state)


def read_state(data: bytes) -> FastTrajectoryState | TrajectoryState:
    """A trajectory state's wire JSON decoded (the version not checked): the msgspec fast
    path, else pydantic (raises :class:`InvalidRecord`)."""
    fast = decode_state(data)
    return fast if fast is not None else decode_as(TrajectoryState, data)


def sink_outcome_row(data: bytes) -> tuple[Any, ...]:
    """The ``outcomes`` row of an outcome's wire JSON, as the sink reads it from Kafka.

    Raises:
        InvalidRecord: the outcome is invalid, or its ``computed_at`` (the row's version) is
            impossible at the sink's clock (``impossible_version``,
            :mod:`meterline.schemas.versions`).
    """
    outcome = decode_as(Outcome, data)
    if outcome.computed_at is not None:
        _refuse(computed_at_problem(outcome.computed_at, utc_now()))
    return outcome_row(outcome)


def trajectory_row(state: TrajectoryState | FastTrajectoryState) -> tuple[Any, ...]:
    t = state.trajectory
    return (
        t.project,
        t.trace_id,
        t.trajectory_id or "",
        t.user_id or "",
        t.anonymous_id or "",
        t.agent_id or "",
        t.status.value,
        t.started_at,
        t.ended_at,
        t.timestamp,
        _json(t.metadata),
        state.version,
    )


def dead_letter_row(letter: DeadLetter) -> tuple[Any, ...]:
    preview = letter.payload[:_PREVIEW_CHARS].decode("utf-8", errors="replace")
    return (
        letter.source_topic,
        letter.partition,
        letter.offset,
        letter.item,
        (letter.key or b"").decode("utf-8", errors="replace"),
        base64.b64encode(letter.payload).decode(),
        preview,
        letter.reason,
        letter.error_type,
        letter.stage,
        letter.received_at,
    )


def outcome_row(outcome: Outcome) -> tuple[Any, ...]:
    """``version`` is ``computed_at`` in microseconds: the later computation wins."""
    computed_at = outcome.computed_at or utc_now()
    return (
        outcome.project,
        outcome.outcome_id,
        outcome.rule_id,
        outcome.rule_revision,
        outcome.rule_name,
        outcome.config_version,
        outcome.trace_id or "",
        outcome.user_id or "",
        outcome.anonymous_id or "",
        list(outcome.event_ids),
        outcome.value,
        outcome.timestamp,
        1 if outcome.retracted else 0,
        computed_at,
        int(computed_at.timestamp() * 1_000_000),
    )


def correction_row(c: OutcomeCorrection) -> tuple[Any, ...]:
    """A pending request: ``version`` is ``requested_at`` in microseconds."""
    version = int(c.requested_at.timestamp() * 1_000_000)
    return (c.project, c.trace_id, c.event_id, c.requested_at, 0, c.requested_at, version)


def seat_count_row(count: SeatCount, computed_at: Any = None) -> tuple[Any, ...]:
    return (
        count.project,
        count.rule_id,
        count.rule_name,
        count.period,
        count.period_start,
        count.seats,
        list(count.users),
        computed_at or utc_now(),
    )

"""Raw records published by agents: action events, telemetry events, trajectory records."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from meterline.schemas.common import Id, JsonObject, Label, UtcDatetime, WireModel, utc_now

#: Largest token count: the ClickHouse columns are UInt64, so every count that validates can
#: be inserted (one that could not would fail the sink's whole batch).
MAX_TOKENS = 2**64 - 1
#: Largest ``cost_usd`` of one event. Costs are summed as ``Decimal(38, 12)`` (below 1e26);
#: every cost that validates can be summed and inserted. No single call costs a trillion
#: dollars: such a value is a bug upstream.
MAX_COST_USD = 1e12

TokenCount = Annotated[int, Field(ge=0, le=MAX_TOKENS)]
CostUsd = Annotated[float, Field(ge=0, le=MAX_COST_USD, allow_inf_nan=False)]
DurationMs = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class ActionKind(StrEnum):
    """What an action event records."""

    ACTION = "action"  # a custom unit of work (object_detection, data_extraction, ...)
    LLM_CALL = "llm_call"  # a call to a language model
    TOOL_CALL = "tool_call"  # a call to a tool / function / external API
    ERROR = "error"  # an error, optionally referencing the event that triggered it


class Status(StrEnum):
    SUCCESS = "success"
    ERROR = "error"


class TrajectoryStatus(StrEnum):
    RUNNING = "running"
    SUCCESS = "success"
    ERROR = "error"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"  # closed by the processor after its inactivity timeout


class _Attributed(WireModel):
    """Fields every raw record carries: tenant, ids, who, when."""

    project: Id = "default"
    event_id: Id
    trace_id: Id | None = None
    session_id: Id | None = None
    user_id: Id | None = None
    anonymous_id: Id | None = None
    agent_id: Id | None = None
    timestamp: UtcDatetime = Field(default_factory=utc_now)
    properties: JsonObject = Field(default_factory=dict)
    metadata: JsonObject = Field(default_factory=dict)

    @property
    def routing_key(self) -> str:
        """The Kafka key: the trace_id when there is one, else the event_id."""
        return self.trace_id or self.event_id


class ActionEvent(_Attributed):
    """One thing the agent did: a custom action, an LLM call, a tool call or an error."""

    type: Literal["action"] = "action"
    kind: ActionKind = ActionKind.ACTION
    name: Label = Field(min_length=1)
    status: Status = Status.SUCCESS
    started_at: UtcDatetime | None = None
    ended_at: UtcDatetime | None = None
    duration_ms: DurationMs | None = None
    # LLM calls
    model: Label | None = None
    provider: Label | None = None
    input_tokens: TokenCount = 0
    output_tokens: TokenCount = 0
    cached_tokens: TokenCount = 0
    cost_usd: CostUsd = 0.0
    # errors
    error_type: Label | None = None
    error_message: str | None = None
    parent_event_id: Id | None = None
    source: Label = "sdk"

    @model_validator(mode="after")
    def _check_llm(self) -> ActionEvent:
        if self.kind is ActionKind.LLM_CALL and not self.model:
            raise ValueError("model: required when kind is 'llm_call'")
        return self


class TelemetryEvent(_Attributed):
    """A product telemetry event (``user.accept``, ``tool.call``, ...)."""

    type: Literal["telemetry"] = "telemetry"
    event_type: Label = Field(min_length=1)
    trajectory_id: Id | None = None
    source: Label = "sdk"


class TrajectoryRecord(WireModel):
    """Start, update or end of one agent run. ``trace_id`` is the join key for its events.

    Several records may be sent for one trace_id (start, then end); the stream processor
    merges them: later non-null fields win, ``started_at`` keeps the earliest value.
    """

    type: Literal["trajectory"] = "trajectory"
    project: Id = "default"
    trace_id: Id
    trajectory_id: Id | None = None
    user_id: Id | None = None
    anonymous_id: Id | None = None
    agent_id: Id | None = None
    status: TrajectoryStatus = TrajectoryStatus.RUNNING
    started_at: UtcDatetime | None = None
    ended_at: UtcDatetime | None = None
    timestamp: UtcDatetime = Field(default_factory=utc_now)
    metadata: JsonObject = Field(default_factory=dict)

    @property
    def routing_key(self) -> str:
        return self.trace_id


Event = ActionEvent | TelemetryEvent
RawRecord = ActionEvent | TelemetryEvent | TrajectoryRecord

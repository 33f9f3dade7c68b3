"""Fast path for decoding raw records (action and telemetry events, trajectory records):
msgspec Structs beside the pydantic models of :mod:`meterline.schemas.events`.

Contract: the fast path accepts a strict subset of what :func:`meterline.schemas.codec.decode_raw`
accepts, with equal field values. :func:`decode_event` returns None for anything else and
:func:`decode_raw_fast` then falls back to pydantic, which reads the lax forms (epoch-number
timestamps, numbers as strings, ids padded with whitespace, ...) or gives the precise error.
``tests/schemas/test_fast_decode.py`` holds the two paths against each other. Stricter than
the models: ints must be JSON integers and strings JSON strings; ids must be printable
(``str.isprintable``) and not start or end with a space (pydantic strips whitespace);
timestamps must be ISO 8601 strings starting ``YYYY-`` (parsed as in ``meterline.schemas.common``).

A :class:`FastActionEvent` / :class:`FastTelemetryEvent` has the attributes of its model
(and ``type``, ``routing_key``); :func:`to_model` gives the pydantic model where one is
needed (the rule stage, :class:`~meterline.schemas.derived.EnrichedEvent`). A
:class:`FastTrajectoryRecord` also tells which fields its JSON set (the processor merges
only those, as pydantic's ``model_fields_set`` says): see :func:`set_fields`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from math import isfinite
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import UNSET, UnsetType
from msgspec.structs import force_setattr

from meterline.schemas.codec import decode_raw
from meterline.schemas.common import SCHEMA_VERSION, _as_utc, check_json_ints
from meterline.schemas.events import (
    MAX_COST_USD,
    ActionEvent,
    ActionKind,
    Event,
    RawRecord,
    Status,
    TelemetryEvent,
    TrajectoryRecord,
    TrajectoryStatus,
)

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]  # and see check_ids
Label = Annotated[str, msgspec.Meta(max_length=512)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
#: msgspec bounds fit an int64: counts up to ``MAX_TOKENS`` (2**64 - 1) above it are pydantic's
Count = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
Cost = Annotated[float, msgspec.Meta(ge=0, le=MAX_COST_USD)]
Duration = Annotated[float, msgspec.Meta(ge=0)]  # and finite: see _finish
Version = Annotated[int, msgspec.Meta(ge=1, le=SCHEMA_VERSION)]
_LLM_CALL = ActionKind.LLM_CALL
#: pydantic refuses JSON nested deeper than about 200 levels; msgspec does not.
_MAX_DEPTH = 200


class _Attributed(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type", kw_only=True
):
    # Timestamps are read as strings and parsed by _finish with the same
    # ``datetime.fromisoformat`` as meterline.schemas.common: msgspec's own parser rounds more than
    # six fractional digits where pydantic's path truncates.
    if TYPE_CHECKING:
        timestamp: datetime
    else:
        timestamp: str
    event_id: Id
    project: Id = "default"
    schema_version: Version = SCHEMA_VERSION
    trace_id: Id | None = None
    session_id: Id | None = None
    user_id: Id | None = None
    anonymous_id: Id | None = None
    agent_id: Id | None = None
    properties: dict[str, Any] = msgspec.field(default_factory=dict)
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)

    @property
    def routing_key(self) -> str:
        """The Kafka key: the trace_id when there is one, else the event_id."""
        return self.trace_id or self.event_id

    def _finish(self) -> None:
        """The checks msgspec cannot express, and the timestamps parsed; raises for
        anything left to pydantic."""
        raise NotImplementedError

    def _finish_common(self, own_id: str | None) -> None:
        """:meth:`_finish` for the fields every event has (``own_id``: the subclass's id
        field besides them)."""
        check_ids((
            self.project, self.event_id, self.trace_id, self.session_id, self.user_id,
            self.anonymous_id, self.agent_id, own_id,
        ))  # fmt: skip
        force_setattr(self, "timestamp", parse_utc(self.timestamp))
        check_json_ints(self.properties)
        check_json_ints(self.metadata)


class FastActionEvent(_Attributed, frozen=True, tag="action"):
    """:class:`~meterline.schemas.events.ActionEvent`, decoded by msgspec."""

    type: ClassVar[Literal["action"]] = "action"
    name: Name
    kind: ActionKind = ActionKind.ACTION
    status: Status = Status.SUCCESS
    if TYPE_CHECKING:
        started_at: datetime | None = None
        ended_at: datetime | None = None
    else:
        started_at: str | None = None
        ended_at: str | None = None
    duration_ms: Duration | None = None
    model: Label | None = None
    provider: Label | None = None
    input_tokens: Count = 0
    output_tokens: Count = 0
    cached_tokens: Count = 0
    cost_usd: Cost = 0.0
    error_type: Label | None = None
    error_message: str | None = None
    parent_event_id: Id | None = None
    source: Label = "sdk"

    def _finish(self) -> None:
        if self.kind is _LLM_CALL and not self.model:
            raise ValueError("model: required when kind is 'llm_call'")
        if self.duration_ms is not None and not isfinite(self.duration_ms):
            raise ValueError("duration_ms left to pydantic")
        self._finish_common(self.parent_event_id)
        if self.started_at is not None:
            force_setattr(self, "started_at", parse_utc(self.started_at))
        if self.ended_at is not None:
            force_setattr(self, "ended_at", parse_utc(self.ended_at))


class FastTelemetryEvent(_Attributed, frozen=True, tag="telemetry"):
    """:class:`~meterline.schemas.events.TelemetryEvent`, decoded by msgspec."""

    type: ClassVar[Literal["telemetry"]] = "telemetry"
    event_type: Name
    trajectory_id: Id | None = None
    source: Label = "sdk"

    def _finish(self) -> None:
        self._finish_common(self.trajectory_id)


class FastTrajectoryRecord(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type", tag="trajectory",
    kw_only=True,
):  # fmt: skip
    """:class:`~meterline.schemas.events.TrajectoryRecord`, decoded by msgspec.

    ``status`` and ``schema_version`` are :data:`msgspec.UNSET` when the JSON leaves them
    out (the model fills its defaults): a later record that does not name its status must
    not reset it to ``running`` when merged. :func:`set_fields` gives what a record sets."""

    type: ClassVar[Literal["trajectory"]] = "trajectory"
    if TYPE_CHECKING:
        timestamp: datetime
        started_at: datetime | None = None
        ended_at: datetime | None = None
    else:
        timestamp: str
        started_at: str | None = None
        ended_at: str | None = None
    trace_id: Id
    project: Id = "default"
    schema_version: Version | UnsetType = UNSET
    trajectory_id: Id | None = None
    user_id: Id | None = None
    anonymous_id: Id | None = None
    agent_id: Id | None = None
    status: TrajectoryStatus | UnsetType = UNSET
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)

    @property
    def routing_key(self) -> str:
        return self.trace_id

    def _finish(self) -> None:
        check_ids((
            self.project, self.trace_id, self.trajectory_id, self.user_id, self.anonymous_id,
            self.agent_id,
        ))  # fmt: skip
        force_setattr(self, "timestamp", parse_utc(self.timestamp))
        if self.started_at is not None:
            force_setattr(self, "started_at", parse_utc(self.started_at))
        if self.ended_at is not None:
            force_setattr(self, "ended_at", parse_utc(self.ended_at))
        check_json_ints(self.metadata)


FastEvent = FastActionEvent | FastTelemetryEvent
#: An event as the processor's steps see it: either decoding path.
AnyEvent = Event | FastEvent
FastRecord = FastEvent | FastTrajectoryRecord
#: A trajectory record as the processor's steps see it: either decoding path.
AnyTrajectory = TrajectoryRecord | FastTrajectoryRecord
#: For ``isinstance``: a trajectory record from either path.
TRAJECTORY_TYPES = (TrajectoryRecord, FastTrajectoryRecord)

_DECODER = msgspec.json.Decoder(FastRecord)


def decode_event(data: bytes | str) -> FastRecord | None:
    """The record (an event or a trajectory record), if the fast path accepts ``data``;
    else None (never raises)."""
    record: FastRecord | None = decode_checked(_DECODER, data)
    return record


def decode_checked(decoder: msgspec.json.Decoder[Any], data: bytes | str) -> Any:
    """``decoder``'s Struct with its ``_finish`` checks passed, or None for anything the
    fast path leaves to pydantic (never raises)."""
    try:
        if maybe_too_deep(data):
            return None
        value = decoder.decode(data)
        value._finish()
    except Exception:  # whatever msgspec or the checks refuse is pydantic's to judge
        return None
    return value


def decode_raw_fast(data: bytes | str) -> RawRecord | FastRecord:
    """:func:`~meterline.schemas.codec.decode_raw` with the fast path first: same records accepted,
    same errors raised."""
    record = decode_event(data)
    return record if record is not None else decode_raw(data)


def to_model(event: AnyEvent) -> Event:
    """The pydantic model of an event (itself if it is one)."""
    if isinstance(event, FastActionEvent):
        return ActionEvent.model_construct(**msgspec.structs.asdict(event))
    if isinstance(event, FastTelemetryEvent):
        return TelemetryEvent.model_construct(**msgspec.structs.asdict(event))
    return event


def to_trajectory_model(record: AnyTrajectory) -> TrajectoryRecord:
    """The pydantic model of a trajectory record (itself if it is one), with the fields its
    JSON set as ``model_fields_set`` (fields set to null aside: merging skips them)."""
    if isinstance(record, TrajectoryRecord):
        return record
    values = set_fields(record)
    full = {name: getattr(record, name) for name in _TRAJECTORY_FIELDS}
    full["status"] = values.get("status", TrajectoryStatus.RUNNING)
    full["schema_version"] = values.get("schema_version", SCHEMA_VERSION)
    return TrajectoryRecord.model_construct(_fields_set=set(values), **full)


def set_fields(record: FastTrajectoryRecord) -> dict[str, Any]:
    """The fields ``record``'s JSON set to a value (not null), as Python values; and
    ``project`` and ``metadata`` always (a merge finds the same project on both sides, being
    keyed by it, and takes the union of metadata)."""
    return {
        name: value
        for name in _TRAJECTORY_FIELDS
        if (value := getattr(record, name)) is not None and value is not UNSET
    }


_TRAJECTORY_FIELDS = tuple(f for f in FastTrajectoryRecord.__struct_fields__ if f != "type")


def to_json_dict(event: AnyEvent) -> dict[str, Any]:
    """The event as JSON-ready builtins, as ``model_dump(mode="json")`` gives them."""
    if isinstance(event, FastActionEvent | FastTelemetryEvent):
        result: dict[str, Any] = msgspec.to_builtins(event)
        return result
    return event.model_dump(mode="json")


def maybe_too_deep(data: bytes | str) -> bool:
    """Whether ``data`` could nest deeper than pydantic's JSON parser allows (msgspec reads
    deeper): more than ``_MAX_DEPTH`` opening brackets."""
    if len(data) <= 2 * _MAX_DEPTH:
        return False
    raw = data.encode() if isinstance(data, str) else data
    return raw.count(b"[") + raw.count(b"{") > _MAX_DEPTH


def check_ids(values: tuple[str | None, ...]) -> None:
    """Printable (no controls, no whitespace but " ") and no " " at either end: then
    pydantic strips nothing and its pattern holds. Usually one check of all ids at once."""
    joined = "".join(filter(None, values))
    if joined.isprintable() and " " not in joined:
        return
    for v in values:
        if v is not None and (v[0] == " " or v[-1] == " " or not v.isprintable()):
            raise ValueError("id left to pydantic")


def parse_utc(value: Any) -> datetime:  # a str: the Struct's annotation is for its readers
    """``meterline.schemas.common._utc_datetime`` for a string that is not an epoch number (a digit,
    then "-" at index 4); anything else raises, for pydantic to judge."""
    if not ("0" <= value[:1] <= "9" and value[4:5] == "-"):
        raise ValueError("timestamp left to pydantic")
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is UTC else _as_utc(parsed)

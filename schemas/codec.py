"""JSON on the wire: bytes <-> records, with errors that name the offending field."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, TypeVar

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from meterline.schemas.common import ID_PATTERN, SCHEMA_VERSION, UtcDatetime
from meterline.schemas.derived import DeadLetter, EnrichedEvent, TrajectoryState
from meterline.schemas.errors import InvalidRecord, UnsupportedSchemaVersion
from meterline.schemas.events import ActionEvent, RawRecord, TelemetryEvent, TrajectoryRecord
from meterline.schemas.outcomes import Outcome, OutcomeCorrection, SeatCount

_RAW: TypeAdapter[RawRecord] = TypeAdapter(
    Annotated[ActionEvent | TelemetryEvent | TrajectoryRecord, Field(discriminator="type")]
)
#: Records meterline's own processors write (type tags ``enriched``, ``trajectory_state``,
#: ``dead_letter``, ``outcome``, ``outcome_correction``, ``seat_count``).
DerivedRecord = (
    EnrichedEvent | TrajectoryState | DeadLetter | Outcome | OutcomeCorrection | SeatCount
)
_DERIVED: TypeAdapter[DerivedRecord] = TypeAdapter(
    Annotated[DerivedRecord, Field(discriminator="type")]
)
M = TypeVar("M", bound=BaseModel)

_MAX_ERRORS_IN_REASON = 5


def encode(record: BaseModel) -> bytes:
    """Serialise any meterline model to its wire form (compact JSON, UTF-8)."""
    return record.model_dump_json(exclude_defaults=False).encode()


_TIMESTAMP: TypeAdapter[datetime] = TypeAdapter(UtcDatetime)
_ENRICHED_HEAD = b'{"schema_version":%d,"type":"enriched","event":' % SCHEMA_VERSION


def encode_timestamp(value: datetime) -> bytes:
    """A timestamp as it appears in wire JSON (quoted, UTC)."""
    return _TIMESTAMP.dump_json(value)


def encode_enriched(
    event_json: bytes, trajectory_json: bytes | None, version: int, processed_at: bytes,
    pricing_json: bytes | None = None,
) -> bytes:  # fmt: skip
    """The wire form of an :class:`~meterline.schemas.derived.EnrichedEvent`, assembled from parts
    already serialised: the processor's hot path, which would otherwise re-serialise the
    same event and trajectory for every output.

    ``event_json`` is a validated raw event as received (or re-encoded), ``trajectory_json``
    the trajectory's JSON (None: unjoined), ``processed_at`` from :func:`encode_timestamp`,
    ``pricing_json`` a :class:`~meterline.schemas.derived.Pricing` object's JSON (None: not priced).
    Decoding the result with ``decode_as(EnrichedEvent, ...)`` gives the same record as
    building the model (a unit test holds both paths equal).
    """
    return b"".join(
        (
            _ENRICHED_HEAD,
            event_json,
            b',"trajectory":',
            trajectory_json if trajectory_json is not None else b"null",
            b',"version":%d,"processed_at":' % version,
            processed_at,
            b',"pricing":',
            b"null" if pricing_json is None else pricing_json,
            b"}",
        )
    )


_STATE_HEAD = b'{"schema_version":%d,"type":"trajectory_state","trajectory":' % SCHEMA_VERSION


def encode_state(trajectory_json: bytes, version: int) -> bytes:
    """The wire form of a :class:`~meterline.schemas.derived.TrajectoryState` from its trajectory's
    JSON (``model_dump_json``): byte for byte what :func:`encode` gives for the model."""
    return b"%s%s,\"version\":%d}" % (_STATE_HEAD, trajectory_json, version)


def decode_raw(data: bytes | str) -> RawRecord:
    """Parse a raw record (action, telemetry or trajectory) from JSON. ``timestamp`` is
    required here (a record built in Python defaults it to the time of construction).

    Raises:
        UnsupportedSchemaVersion: the record is from a newer schema than this code knows.
        InvalidRecord: anything else; ``reason`` names the field(s).
    """
    try:
        record = _RAW.validate_json(data)
    except ValidationError as exc:
        raise _to_invalid(exc, data) from None
    if "timestamp" not in record.model_fields_set:
        # the model's default (now) is for records built in the agent; on the wire a missing
        # event time would silently become ingestion time
        raise InvalidRecord(
            "timestamp: Field required (event time is never replaced by ingestion time)"
        )
    return record


def decode_derived(data: bytes | str) -> DerivedRecord:
    """Parse any record meterline's processors write, by its ``type`` tag."""
    try:
        return _DERIVED.validate_json(data)
    except ValidationError as exc:
        raise _to_invalid(exc, data) from None


def decode_as(model: type[M], data: bytes | str) -> M:
    """Parse one known model type from JSON (used for meterline's own topics)."""
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        raise _to_invalid(exc, data) from None


def describe(exc: ValidationError) -> str:
    """One line naming each failing field: ``"event_id: Field required; kind: ..."``."""
    parts: list[str] = []
    for err in exc.errors(include_url=False)[:_MAX_ERRORS_IN_REASON]:
        loc = ".".join(str(p) for p in err["loc"] if not _is_union_tag(p))
        msg = err["msg"]
        if err["type"] == "union_tag_not_found":
            loc, msg = "type", "missing; expected one of 'action', 'telemetry', 'trajectory'"
        elif err["type"] == "union_tag_invalid":
            loc = "type"
        elif err["type"] == "string_pattern_mismatch" and err.get("ctx", {}).get(
            "pattern"
        ) == ID_PATTERN:
            msg = "must not contain control characters (NUL, newline, tab, ...)"
        parts.append(f"{loc}: {msg}" if loc else msg)
    extra = exc.error_count() - _MAX_ERRORS_IN_REASON
    if extra > 0:
        parts.append(f"... and {extra} more")
    return "; ".join(parts)


def _is_union_tag(part: object) -> bool:
    return part in (
        "action", "telemetry", "trajectory", "enriched", "trajectory_state", "dead_letter",
        "outcome", "outcome_correction", "seat_count",
    )  # fmt: skip


def _to_invalid(exc: ValidationError, data: bytes | str) -> InvalidRecord:
    version = _declared_version(data)
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        return UnsupportedSchemaVersion(version, SCHEMA_VERSION)
    error_type = "invalid_json" if _is_json_error(exc) else "invalid_record"
    return InvalidRecord(describe(exc), error_type=error_type)


def _is_json_error(exc: ValidationError) -> bool:
    return any(err["type"] == "json_invalid" for err in exc.errors(include_url=False))


def _declared_version(data: bytes | str) -> object:
    """Best-effort read of ``schema_version`` from a record that failed validation."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    return obj.get("schema_version") if isinstance(obj, dict) else None

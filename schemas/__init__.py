"""meterline wire schemas: immutable pydantic models for every record that crosses Kafka.

Data types only; no I/O. JSON on the wire (:mod:`schemas.codec`).
"""

from schemas.codec import DerivedRecord, decode_as, decode_derived, decode_raw, describe, encode
from schemas.common import SCHEMA_VERSION, utc_now
from schemas.derived import (
    VERSION_JOINED,
    VERSION_UNJOINED,
    DeadLetter,
    EnrichedEvent,
    TrajectoryState,
)
from schemas.errors import InvalidRecord, SchemaError, UnsupportedSchemaVersion
from schemas.events import (
    ActionEvent,
    ActionKind,
    Event,
    RawRecord,
    Status,
    TelemetryEvent,
    TrajectoryRecord,
    TrajectoryStatus,
)
from schemas.topics import Topics

__all__ = [
    "SCHEMA_VERSION",
    "VERSION_JOINED",
    "VERSION_UNJOINED",
    "ActionEvent",
    "ActionKind",
    "DeadLetter",
    "DerivedRecord",
    "EnrichedEvent",
    "Event",
    "InvalidRecord",
    "RawRecord",
    "SchemaError",
    "Status",
    "TelemetryEvent",
    "Topics",
    "TrajectoryRecord",
    "TrajectoryState",
    "TrajectoryStatus",
    "UnsupportedSchemaVersion",
    "decode_as",
    "decode_derived",
    "decode_raw",
    "describe",
    "encode",
    "utc_now",
]

from schemas.control_plane import ControlPlane, OutcomeRule, SeatRule
from schemas.outcomes import (
    Outcome,
    OutcomeCorrection,
    SeatCount,
    UserActivity,
    UserAttributes,
)

__all__ += [
    "ControlPlane",
    "Outcome",
    "OutcomeCorrection",
    "OutcomeRule",
    "SeatCount",
    "SeatRule",
    "UserActivity",
    "UserAttributes",
]

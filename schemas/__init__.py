"""meterline wire schemas: immutable pydantic models for every record that crosses Kafka.

Data types only; no I/O. JSON on the wire (:mod:`meterline.schemas.codec`).
"""

from meterline.schemas.codec import (
    DerivedRecord,
    decode_as,
    decode_derived,
    decode_raw,
    describe,
    encode,
)
from meterline.schemas.common import SCHEMA_VERSION, utc_now
from meterline.schemas.derived import (
    VERSION_JOINED,
    VERSION_UNJOINED,
    DeadLetter,
    EnrichedEvent,
    TrajectoryState,
)
from meterline.schemas.errors import InvalidRecord, SchemaError, UnsupportedSchemaVersion
from meterline.schemas.events import (
    ActionEvent,
    ActionKind,
    Event,
    RawRecord,
    Status,
    TelemetryEvent,
    TrajectoryRecord,
    TrajectoryStatus,
)
from meterline.schemas.topics import Topics

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

from meterline.schemas.control_plane import ControlPlane, OutcomeRule, SeatRule
from meterline.schemas.outcomes import (
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

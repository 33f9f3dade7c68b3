"""Field types shared by every record that crosses Kafka."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

#: The wire format version this code writes and the newest it reads.
SCHEMA_VERSION = 1

#: An identifier: non-empty, no surrounding whitespace, at most 256 characters.
Id = Annotated[str, StringConstraints(min_length=1, max_length=256, strip_whitespace=True)]

#: A free-form label (action names, models, ...): at most 512 characters.
Label = Annotated[str, StringConstraints(max_length=512)]


def _as_utc(value: datetime) -> datetime:
    """Normalise to an aware UTC datetime. A naive datetime is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


#: A point in time, always aware and in UTC on the way out.
UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]

#: JSON-object payloads (properties, metadata).
JsonObject = dict[str, Any]


def utc_now() -> datetime:
    return datetime.now(UTC)


class WireModel(BaseModel):
    """Base of every model that crosses Kafka: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    schema_version: int = Field(default=SCHEMA_VERSION, ge=1, le=SCHEMA_VERSION)

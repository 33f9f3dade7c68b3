"""Field types shared by every record that crosses Kafka."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)

#: The wire format version this code writes and the newest it reads.
SCHEMA_VERSION = 1

#: What an identifier may hold: anything but C0 controls (NUL, newline, tab, ...) and DEL.
ID_PATTERN = r"^[^\x00-\x1f\x7f]*$"

#: An identifier: a string (never a number), non-empty after stripping surrounding
#: whitespace, at most 256 characters, no control characters.
Id = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=256, strip_whitespace=True, pattern=ID_PATTERN
    ),
]

#: A free-form label (action names, models, ...): at most 512 characters.
Label = Annotated[str, StringConstraints(max_length=512)]


#: Epoch numbers at or above these magnitudes are milliseconds, microseconds, nanoseconds.
_EPOCH_UNITS = ((1e17, 1e9), (1e14, 1e6), (1e11, 1e3))


def epoch_seconds(value: float) -> float:
    """Seconds since the Unix epoch for an epoch number in s, ms, us or ns, by magnitude:
    below 1e11 seconds (up to year 5138), below 1e14 milliseconds, below 1e17
    microseconds, else nanoseconds."""
    for threshold, divisor in _EPOCH_UNITS:
        if abs(value) >= threshold:
            return value / divisor
    return value


def _from_epoch(value: Any) -> Any:
    """Epoch numbers (int, float or a string of digits) -> aware UTC datetimes. Anything
    else is left to pydantic's datetime parsing (ISO 8601). Booleans are refused."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a timestamp")
    is_number = isinstance(value, int | float)
    if not is_number and not (isinstance(value, str) and _EPOCH_STRING.fullmatch(value.strip())):
        return value
    try:
        return datetime.fromtimestamp(epoch_seconds(float(value)), UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"epoch number {value!r} is out of range") from None


_EPOCH_STRING = re.compile(r"-?\d+(\.\d+)?")


def _as_utc(value: datetime) -> datetime:
    """Normalise to an aware UTC datetime. A naive datetime is taken to be UTC already.
    A time whose UTC form falls outside years 1-9999 (``0001-01-01T00:00:00+01:00``) is a
    ``ValueError`` (an invalid field), not the ``OverflowError`` datetime raises."""
    tz = value.tzinfo
    if tz is UTC:
        return value
    if tz is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{value.isoformat()} is out of range in UTC") from None


def _utc_datetime(value: Any, handler: ValidatorFunctionWrapHandler) -> datetime:
    """One Python call per field on the hot path: an ISO 8601 string goes through the C
    ``datetime.fromisoformat``; anything it does not read, pydantic's parser (and its error
    message); epoch numbers through :func:`_from_epoch`. Always aware UTC on the way out."""
    # "T" (or ":") never occurs in an epoch string: the common ISO form skips the regex
    if type(value) is str and ("T" in value or not _EPOCH_STRING.fullmatch(value.strip())):
        try:
            return _as_utc(datetime.fromisoformat(value))
        except ValueError:
            return _as_utc(handler(value))
    return _as_utc(handler(_from_epoch(value)))


#: A point in time, always aware and in UTC on the way out. Accepted: ISO 8601 strings
#: (without an offset: UTC), datetimes (naive: UTC), and Unix epoch numbers in seconds,
#: milliseconds, microseconds or nanoseconds (unit by magnitude, see :func:`epoch_seconds`).
#: Range checks against processing time are in ``schemas/validation.py`` (``check_time``).
UtcDatetime = Annotated[datetime, WrapValidator(_utc_datetime)]

#: The integers a JSON payload may hold: what the pipeline's JSON writers (orjson, in the
#: processor's state and the sink's columns) can write again, so a parked event that holds
#: one can be written to state and replayed.
MIN_JSON_INT = -(2**63)
MAX_JSON_INT = 2**64 - 1
_SCALARS = (str, float, bool, type(None))


def out_of_range_int(value: Any) -> list[str] | None:
    """The path (innermost key first) to the first integer in ``value`` outside
    ``MIN_JSON_INT..MAX_JSON_INT``, through dicts and lists; None if there is none."""
    kind = type(value)
    if kind is int:
        return None if MIN_JSON_INT <= value <= MAX_JSON_INT else []
    if kind is dict:
        items: Any = value.items()
    elif kind is list or kind is tuple:
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        if type(item) in _SCALARS:
            continue
        path = out_of_range_int(item)
        if path is not None:
            path.append(str(key))
            return path
    return None


def check_json_ints(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` unchanged, or a ``ValueError`` naming the key of an integer out of range."""
    path = out_of_range_int(value)
    if path is None:
        return value
    raise ValueError(
        f"{'.'.join(reversed(path))}: integer outside the 64-bit range "
        f"[-2^63, 2^64 - 1]; send it as a string"
    )


#: JSON-object payloads (properties, metadata); integers must fit in 64 bits.
JsonObject = Annotated[dict[str, Any], AfterValidator(check_json_ints)]


def utc_now() -> datetime:
    return datetime.now(UTC)


class WireModel(BaseModel):
    """Base of every model that crosses Kafka: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    schema_version: int = Field(default=SCHEMA_VERSION, ge=1, le=SCHEMA_VERSION)

"""The record rules: what the ingestion gateway checks before it produces a record and the
processor's validate step checks before it processes one, so that a record the gateway
accepts is one the processor accepts.

:func:`check_record` applies them in order: not empty; at most ``max_bytes`` (before parsing);
the schema (:func:`~meterline.schemas.fast_decode.decode_raw_fast`: JSON, fields, types, ids);
event times within :class:`TimeBounds`. A refusal is an :class:`InvalidRecord` whose
``reason`` names the field and whose ``error_type`` is the dead-letter and metrics label;
callers add where the record came from. Pure apart from ``now``.

Event times (docs/reliability.md, "Clock skew"):

- Parsing is the schema's (``meterline.schemas.common.UtcDatetime``): ISO 8601, naive = UTC,
  Unix epoch numbers in s/ms/us/ns by magnitude. A record without ``timestamp`` is invalid.
- Range is checked here, against "now" (processing time): ``timestamp``, ``started_at`` and
  ``ended_at`` must lie in ``[min_time, now + max_future]``. Otherwise the record is refused
  with error type ``timestamp_out_of_range`` (:class:`TimestampOutOfRange`) and a reason
  naming the field, its value and the bound; the dead letter keeps the original bytes.
  Nothing is clamped and nothing is replaced by ingestion time.

Why bound the future at all: events dated years ahead land in days and months no bill
covers yet (the dedupe window runs on processing time, so no timestamp moves it). The
default 24 h lets through any time-zone mistake (at most 14 h) and producer clocks that are
a little fast, and stops unit mistakes (milliseconds read as seconds land in the year 50,000)
and garbage. The lower bound 2000-01-01 catches epoch 0 and similar defaults; older real
data is not expected from agents.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from meterline.schemas.common import utc_now
from meterline.schemas.errors import (
    UNEXPECTED_ERROR,
    InvalidRecord,
    TimestampOutOfRange,
    UnexpectedValidationError,
)
from meterline.schemas.events import ActionEvent, RawRecord, TrajectoryRecord
from meterline.schemas.fast_decode import (
    FastActionEvent,
    FastRecord,
    FastTrajectoryRecord,
    decode_raw_fast,
)

__all__ = [
    "DEFAULT_BOUNDS",
    "DEFAULT_MAX_RECORD_BYTES",
    "UNEXPECTED_ERROR",
    "InvalidRecord",
    "TimeBounds",
    "TimestampOutOfRange",
    "UnexpectedValidationError",
    "check_record",
    "check_time",
]

#: Records larger than this are refused before parsing.
DEFAULT_MAX_RECORD_BYTES = 1_000_000



@dataclass(frozen=True)
class TimeBounds:
    """Accepted event-time range, relative to processing time for the upper bound."""

    max_future: timedelta = timedelta(hours=24)
    min_time: datetime = datetime(2000, 1, 1, tzinfo=UTC)


DEFAULT_BOUNDS = TimeBounds()


def check_record(
    value: bytes | None,
    *,
    max_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    time_bounds: TimeBounds = DEFAULT_BOUNDS,
    now: datetime | None = None,
) -> RawRecord | FastRecord:
    """Parse one raw record and check its event times against ``time_bounds`` (the upper
    bound relative to ``now``, default the current time).

    Raises:
        InvalidRecord: empty (``empty``), oversized (``oversized``), not JSON, not a valid
            record, an event time out of range (:class:`TimestampOutOfRange`), or an
            unexpected error while validating (:class:`UnexpectedValidationError`, the
            original error as its ``__cause__``).
    """
    if not value:
        raise InvalidRecord("empty record (no value)", error_type="empty")
    if len(value) > max_bytes:
        raise InvalidRecord(
            f"record of {len(value)} bytes exceeds the {max_bytes}-byte limit",
            error_type="oversized",
        )
    try:
        record = decode_raw_fast(value)  # msgspec first; pydantic for the rest
        check_time(record, time_bounds, now)
    except InvalidRecord:
        raise
    except Exception as exc:  # a bug in validation: this record, not the caller, pays for it
        raise UnexpectedValidationError(exc) from exc
    return record


def check_time(
    record: RawRecord | FastRecord, bounds: TimeBounds, now: datetime | None = None
) -> None:
    """Raise :class:`TimestampOutOfRange` for the first out-of-range time field.

    Pure apart from ``now`` (default: the current UTC time).
    """
    latest = (now or utc_now()) + bounds.max_future
    low = bounds.min_time
    # the common case: every time in range, without building the list that names a field
    if low <= record.timestamp <= latest and (
        not isinstance(record, _SPANNED)
        or (
            (record.started_at is None or low <= record.started_at <= latest)
            and (record.ended_at is None or low <= record.ended_at <= latest)
        )
    ):
        return
    for name, value in _times(record):
        if value is None:
            continue
        if value > latest:
            ahead = value - (latest - bounds.max_future)
            raise TimestampOutOfRange(
                f"{name}: {value.isoformat()} is {_hours(ahead)} ahead of processing time "
                f"(limit {_hours(bounds.max_future)})"
            )
        if value < bounds.min_time:
            raise TimestampOutOfRange(
                f"{name}: {value.isoformat()} is before {bounds.min_time.date().isoformat()}"
            )


#: Records with ``started_at`` and ``ended_at`` besides ``timestamp``.
_SPANNED = (ActionEvent, FastActionEvent, TrajectoryRecord, FastTrajectoryRecord)


def _times(record: RawRecord | FastRecord) -> list[tuple[str, datetime | None]]:
    times: list[tuple[str, datetime | None]] = [("timestamp", record.timestamp)]
    if isinstance(record, _SPANNED):
        times += [("started_at", record.started_at), ("ended_at", record.ended_at)]
    return times


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:,.1f} h"

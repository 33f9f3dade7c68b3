"""Validate step: raw Kafka bytes -> a typed record, or an :class:`InvalidMessage`."""

from __future__ import annotations

import logging
from datetime import datetime

from meterline.schemas import DeadLetter, InvalidRecord, RawRecord
from meterline.schemas.fast_decode import FastRecord, decode_raw_fast
from meterline.stream_processors.errors import InvalidMessage
from meterline.stream_processors.steps.clock import (
    DEFAULT_BOUNDS,
    ERROR_TYPE,
    TimeBounds,
    TimestampOutOfRange,
    check_time,
)

log = logging.getLogger(__name__)

#: Records larger than this are rejected before parsing.
DEFAULT_MAX_RECORD_BYTES = 1_000_000

#: ``error_type`` of a record whose validation raised something other than a validation
#: error (a bug): dead-lettered like an invalid record, so replaying it cannot crash-loop the
#: worker (a project whose records mostly fail is quarantined: ``steps/quarantine.py``).
UNEXPECTED_ERROR = "unexpected_error"


def validate(
    value: bytes | None,
    *,
    topic: str,
    partition: int,
    offset: int,
    item: int = 0,
    max_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    time_bounds: TimeBounds = DEFAULT_BOUNDS,
    now: datetime | None = None,
) -> RawRecord | FastRecord:
    """Parse one raw record (``item``: its index inside a batch message, else 0) and check
    its event times against ``time_bounds`` (the upper bound relative to ``now``, default the
    current time: see ``steps/clock.py``).

    Raises:
        InvalidMessage: empty, oversized, not JSON, not a valid record, or an event time out
            of range (``timestamp_out_of_range``); carries where it came from and a reason
            naming the field.
    """
    if not value:
        raise InvalidMessage(
            "empty record (no value)",
            error_type="empty",
            topic=topic,
            partition=partition,
            offset=offset,
            item=item,
        )
    if len(value) > max_bytes:
        raise InvalidMessage(
            f"record of {len(value)} bytes exceeds the {max_bytes}-byte limit",
            error_type="oversized",
            topic=topic,
            partition=partition,
            offset=offset,
            item=item,
        )
    try:
        record = decode_raw_fast(value)  # msgspec first; pydantic for the rest
        check_time(record, time_bounds, now)
    except InvalidRecord as exc:
        raise InvalidMessage(
            exc.reason,
            error_type=exc.error_type,
            topic=topic,
            partition=partition,
            offset=offset,
            item=item,
        ) from None
    except TimestampOutOfRange as exc:
        raise InvalidMessage(
            str(exc), error_type=ERROR_TYPE, topic=topic, partition=partition, offset=offset,
            item=item,
        ) from None
    except Exception as exc:  # a bug in validation: this record, not the worker, pays for it
        log.exception("unexpected error validating %s[%d]@%d item %d", topic, partition,
                      offset, item)  # fmt: skip
        raise InvalidMessage(
            f"unexpected {type(exc).__name__} while validating: {exc}",
            error_type=UNEXPECTED_ERROR,
            topic=topic,
            partition=partition,
            offset=offset,
            item=item,
        ) from None
    return record


def dead_letter_for(
    exc: InvalidMessage, key: bytes | None, value: bytes | None,
    max_payload: int = DEFAULT_MAX_RECORD_BYTES, *, stage: str = "validate",
) -> DeadLetter:  # fmt: skip
    """The dead letter that records ``exc`` together with the original bytes -- for a record
    over ``max_payload`` (default :data:`DEFAULT_MAX_RECORD_BYTES`), its first ``max_payload``
    bytes (a dead letter must itself fit in one Kafka message: the worker lowers it for a
    dead-letter topic under ~1.3 MB); the reason then says how large it was."""
    payload = value or b""
    reason = exc.reason
    if len(payload) > max_payload:
        reason += f" (payload kept: the first {max_payload} of {len(payload)} bytes)"
        payload = payload[:max_payload]
    return DeadLetter(
        source_topic=exc.topic,
        partition=exc.partition,
        offset=exc.offset,
        item=exc.item,
        key=key,
        payload=payload,
        reason=reason,
        error_type=exc.error_type,
        stage=stage,
    )

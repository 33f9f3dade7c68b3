"""Validate step: raw Kafka bytes -> a typed record, or an :class:`InvalidMessage`.

The rules are the ones the gateway applies too (:mod:`meterline.schemas.validation`); this step
adds where the record came from, and turns a refusal into the dead letter that keeps its bytes.
"""

from __future__ import annotations

import logging
from datetime import datetime

from meterline.schemas import DeadLetter, InvalidRecord, RawRecord
from meterline.schemas.fast_decode import FastRecord
from meterline.schemas.validation import (
    DEFAULT_BOUNDS,
    DEFAULT_MAX_RECORD_BYTES,
    UNEXPECTED_ERROR,
    TimeBounds,
    UnexpectedValidationError,
    check_record,
)
from meterline.stream_processors.errors import InvalidMessage

__all__ = ["DEFAULT_MAX_RECORD_BYTES", "UNEXPECTED_ERROR", "dead_letter_for", "validate"]

log = logging.getLogger(__name__)


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
    it by :func:`~meterline.schemas.validation.check_record` (event times against
    ``time_bounds``, the upper bound relative to ``now``, default the current time).

    Raises:
        InvalidMessage: empty, oversized, not JSON, not a valid record, an event time out
            of range (``timestamp_out_of_range``), or an unexpected error while validating
            (``unexpected_error``: a bug, logged with its traceback; dead-lettered like an
            invalid record, so replaying it cannot crash-loop the worker, and a project whose
            records mostly fail is quarantined: ``steps/quarantine.py``); carries where it
            came from and a reason naming the field.
    """
    try:
        return check_record(value, max_bytes=max_bytes, time_bounds=time_bounds, now=now)
    except InvalidRecord as exc:
        if isinstance(exc, UnexpectedValidationError):
            log.error("unexpected error validating %s[%d]@%d item %d", topic, partition,
                      offset, item, exc_info=exc.__cause__)  # fmt: skip
        raise InvalidMessage(
            exc.reason,
            error_type=exc.error_type,
            topic=topic,
            partition=partition,
            offset=offset,
            item=item,
        ) from None


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

"""Errors raised by the meterline producer."""

from __future__ import annotations


class ProducerError(Exception):
    """Base class for every error raised by :mod:`producers`."""


class QueueFull(ProducerError):
    """The local delivery queue stayed full for longer than ``block_timeout_s``.

    The record was not enqueued. Recoverable: flush, or retry later.
    """


class DeliveryFailed(ProducerError):
    """The broker did not acknowledge a record (reported through callbacks and counters)."""


class NotConfigured(ProducerError):
    """No meterline client: call ``meterline.init(...)`` or set
    ``METERLINE_KAFKA_BOOTSTRAP``."""


class RecordTooLarge(ProducerError, ValueError):
    """A record serialises to more than ``Limits.max_record_bytes`` (after truncation).

    It is never sent. ``record`` names it (kind and event_id, or trace_id for a trajectory).
    """

    def __init__(self, record: str, size: int, limit: int) -> None:
        super().__init__(
            f"{record} is {size} bytes serialised, over the {limit}-byte limit; not sent"
        )
        self.record = record
        self.size = size
        self.limit = limit

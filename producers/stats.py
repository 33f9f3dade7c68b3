"""The SDK client's counters (:attr:`MeterlineClient.stats`), whatever its sink."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

__all__ = ["SdkStats"]


@dataclass
class SdkStats:
    """Counters, readable at any time. ``dropped + build_errors + oversized + send_errors +
    failed`` is everything recorded that did not reach the broker."""

    processed: int = 0  # work items taken off the queue by the sender thread
    dropped: int = 0  # refused on the hot path: queue full (or client closed)
    build_errors: int = 0  # item could not become a valid wire record
    oversized: int = 0  # over limits.max_record_bytes after truncation: not sent
    truncated: int = 0  # records sent with attributes cut by the limits (still sent)
    sent: int = 0  # records handed to the sink
    send_errors: int = 0  # the sink refused a record (e.g. librdkafka queue full)
    delivered: int = 0  # acknowledged by the broker
    failed: int = 0  # not delivered and not spooled (also reported to on_error)
    spooled: int = 0  # not delivered, written to the spool file (re-sent by a later process)
    resent: int = 0  # records read back from the spool and queued again
    last_error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    #: the counter fields, in the order :meth:`snapshot` reports them
    COUNTERS = (
        "processed", "dropped", "build_errors", "oversized", "truncated",
        "sent", "send_errors", "delivered", "failed", "spooled", "resent",
    )

    def snapshot(self) -> dict[str, int]:
        """A consistent copy of the counters (for logs, health checks, metrics)."""
        with self._lock:
            return {name: int(getattr(self, name)) for name in self.COUNTERS}

    def bump(self, name: str, error: str | None = None) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)
            if error is not None:
                self.last_error = error


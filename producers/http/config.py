"""How the HTTP sink batches, posts and retries (:class:`HttpConfig`), and its counters."""

from __future__ import annotations

from dataclasses import dataclass, field

from meterline.producers.client import DeliveryStats

#: the gateway's events endpoint, appended to the endpoint's path
EVENTS_PATH = "/v1/events"
#: answers worth retrying (the gateway's 429 and 503; proxies' 408, 500, 502, 504)
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
#: Retry-After values beyond this (seconds) are taken as this
MAX_RETRY_AFTER_S = 300.0


@dataclass(frozen=True)
class HttpConfig:
    """How :class:`~meterline.producers.http.HttpSink` batches, posts and retries. The
    gateway takes at most 1,000 records and 5 MiB (decompressed) per request."""

    max_records: int = 500
    max_bytes: int = 4_000_000  # uncompressed NDJSON per request
    linger_s: float = 0.05
    gzip_level: int = 5
    request_timeout_s: float = 30.0  # one request (the gateway waits up to ~12 s for acks)
    delivery_timeout_s: float = 300.0  # a record's whole life in the sink, retries included
    max_buffered: int = 100_000
    block_timeout_s: float = 5.0
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_records <= 1_000:
            raise ValueError("HttpConfig.max_records must be within 1..1000 (the gateway's limit)")
        for name in ("max_bytes", "max_buffered"):
            if getattr(self, name) < 1:
                raise ValueError(f"HttpConfig.{name} must be >= 1")


@dataclass
class HttpStats(DeliveryStats):
    """:class:`DeliveryStats` (``enqueued``, ``delivered``, ``failed``, ``last_error``) and the
    requests: ``requests`` made, ``retries`` (``retried_by`` reason: ``"429"``,
    ``"503"``, ``"connection"``, ...), ``refused`` (records the gateway refused)."""

    requests: int = 0
    retries: int = 0
    refused: int = 0
    retried_by: dict[str, int] = field(default_factory=dict)
    last_status: int | None = None

    def retried(self, reason: str) -> None:
        with self._lock:
            self.retries += 1
            self.retried_by[reason] = self.retried_by.get(reason, 0) + 1

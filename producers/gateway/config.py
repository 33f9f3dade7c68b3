"""The gateway's one config object, built by the shell (CLI, embedded runtime, tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meterline.schemas import Topics

#: Default port of ``meterline gateway`` and of the gateway ``meterline up`` starts.
DEFAULT_PORT = 8322
MAX_RECORDS = 1_000
MAX_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class GatewayConfig:
    """Where the gateway listens, what it produces to, and its limits.

    ``rate_per_s`` / ``burst``: each key's token bucket, one token per request.
    ``ack_timeout_s``: how long a request waits for the broker's acknowledgement of its
    records before it is answered 503 (also librdkafka's ``message.timeout.ms``).
    """

    kafka_bootstrap: str
    keys_file: Path
    topics: Topics = field(default_factory=Topics)
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    max_records: int = MAX_RECORDS
    max_bytes: int = MAX_BYTES
    rate_per_s: float = 100.0
    burst: float = 200.0
    ack_timeout_s: float = 10.0
    retry_after_s: int = 5
    keys_reload_s: float = 1.0
    readiness_interval_s: float = 2.0
    kafka_config: dict[str, Any] = field(default_factory=dict)

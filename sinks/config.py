"""The sink's own configuration: what :mod:`meterline.sinks.service` needs, nothing read from env.

The product shell builds it (``Settings.sink_config()``); tests build it directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from meterline.schemas import Topics
from meterline.sinks.clickhouse.connection import redact_url


@dataclass(frozen=True)
class SinkConfig:
    """Where the sink reads and writes, and its limits.

    ``kafka_access`` holds librdkafka access settings (security protocol, SASL, CA), merged
    into the consumer config next to ``bootstrap.servers``; secrets in it and a password in
    ``clickhouse_url`` never appear in ``repr``.
    """

    clickhouse_url: str
    database: str = "meterline"
    kafka_bootstrap: str | None = None
    topics: Topics = field(default_factory=Topics)
    group_id: str = "meterline-sink"
    session_timeout_s: float = 6.0
    heartbeat_interval_s: float = 0.5
    kafka_access: dict[str, str] = field(default_factory=dict)
    max_rejected: int = 100
    reject_max_ratio: float | None = 0.5
    undecodable_max_ratio: float | None = 0.5

    def consumer_timeouts(self) -> dict[str, Any]:
        """Group timing for librdkafka consumers (a group join waits about half the session)."""
        return {
            "session.timeout.ms": int(self.session_timeout_s * 1000),
            "heartbeat.interval.ms": int(self.heartbeat_interval_s * 1000),
        }

    def consumer_config(self) -> dict[str, Any]:
        """Timings and access settings for the sink's consumer."""
        return {**self.consumer_timeouts(), **self.kafka_access}

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "clickhouse_url":
                value = redact_url(value)
            elif f.name == "kafka_access":
                value = sorted(value)  # keys only: values may be secrets
            parts.append(f"{f.name}={value!r}")
        return f"SinkConfig({', '.join(parts)})"

"""Build the sink service from settings: one place for ``meterline up`` and ``meterline sink``."""

from __future__ import annotations

from typing import Any

from sinks import ClickHouseSink, ClickHouseWriter, connect
from sinks.metrics import SinkMetrics
from stream_processors.settings import Settings


def consumer_timeouts(settings: Settings) -> dict[str, Any]:
    """Group timing for librdkafka consumers (a group join waits about half the session)."""
    return {
        "session.timeout.ms": int(settings.session_timeout_s * 1000),
        "heartbeat.interval.ms": int(settings.heartbeat_interval_s * 1000),
    }


def clickhouse_writer(settings: Settings, client: Any | None = None) -> ClickHouseWriter:
    """A writer on ``settings``' ClickHouse with its tables created (idempotent)."""
    writer = ClickHouseWriter(
        client or connect(settings.effective_clickhouse_url), settings.database
    )
    writer.ensure_schema()
    return writer


def build_sink(
    settings: Settings, writer: ClickHouseWriter, metrics: SinkMetrics | None = None
) -> ClickHouseSink:
    if not settings.kafka_bootstrap:
        raise ValueError("kafka_bootstrap is required to build the sink")
    return ClickHouseSink(
        settings.kafka_bootstrap,
        settings.topics,
        writer,
        group_id=settings.sink_group,
        consumer_config=consumer_timeouts(settings),
        metrics=metrics,
    )

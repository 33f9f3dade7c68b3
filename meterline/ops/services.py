"""Build the sink service from settings: one place for ``meterline up`` and ``meterline sink``."""

from __future__ import annotations

import logging
import threading
from typing import Any

from meterline.settings import Settings
from meterline.sinks import (
    ClickHouseSink,
    ClickHouseWriter,
    ConfigurationError,
    connect,
    redact_url,
)
from meterline.sinks.metrics import SinkMetrics

log = logging.getLogger(__name__)


class Stopped(Exception):
    """Asked to stop while waiting for ClickHouse."""


def consumer_timeouts(settings: Settings) -> dict[str, Any]:
    """Group timing for librdkafka consumers (a group join waits about half the session)."""
    return {
        "session.timeout.ms": int(settings.session_timeout_s * 1000),
        "heartbeat.interval.ms": int(settings.heartbeat_interval_s * 1000),
    }


def clickhouse_writer(
    settings: Settings,
    client: Any | None = None,
    *,
    stop: threading.Event | None = None,
    retry_backoff_s: tuple[float, float] | None = None,
) -> ClickHouseWriter:
    """A writer on ``settings``' ClickHouse with its tables created (idempotent).

    With ``retry_backoff_s`` (first, max delay), an unreachable ClickHouse is retried with
    exponential backoff until it answers or ``stop`` is set (then :class:`Stopped`); a
    misconfigured URL still fails at once. Without it, the first error is raised.
    """
    delay = retry_backoff_s[0] if retry_backoff_s else 0.0
    while True:
        try:
            writer = ClickHouseWriter(
                client or connect(settings.effective_clickhouse_url), settings.database
            )
            writer.ensure_schema()
            return writer
        except ConfigurationError:
            raise
        except Exception as exc:
            if retry_backoff_s is None:
                raise
            log.error(
                "ClickHouse at %s unreachable (%s); retrying in %.1fs",
                redact_url(settings.effective_clickhouse_url),
                str(exc).splitlines()[0][:200],
                delay,
            )
            if (stop or threading.Event()).wait(delay):
                raise Stopped from exc
            delay = min(delay * 2, retry_backoff_s[1])


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
        consumer_config={**consumer_timeouts(settings), **settings.kafka_client_config()},
        metrics=metrics,
        max_rejected=settings.sink_max_rejected,
        reject_max_ratio=settings.sink_reject_max_ratio or None,
        undecodable_max_ratio=settings.sink_undecodable_max_ratio or None,
    )

"""Build the sink service from its :class:`SinkConfig`: one place for ``meterline up`` and
``meterline sink``."""

from __future__ import annotations

import logging
import threading
from typing import Any

from meterline.sinks.clickhouse.connection import connect, redact_url
from meterline.sinks.clickhouse.writer import ClickHouseWriter
from meterline.sinks.config import SinkConfig
from meterline.sinks.consumer import ClickHouseSink
from meterline.sinks.errors import ConfigurationError
from meterline.sinks.metrics import SinkMetrics

log = logging.getLogger(__name__)


class Stopped(Exception):
    """Asked to stop while waiting for ClickHouse."""


def consumer_timeouts(config: SinkConfig) -> dict[str, Any]:
    """Group timing for librdkafka consumers (a group join waits about half the session)."""
    return config.consumer_timeouts()


def clickhouse_writer(
    config: SinkConfig,
    client: Any | None = None,
    *,
    stop: threading.Event | None = None,
    retry_backoff_s: tuple[float, float] | None = None,
) -> ClickHouseWriter:
    """A writer on ``config``'s ClickHouse with its tables created (idempotent).

    With ``retry_backoff_s`` (first, max delay), an unreachable ClickHouse is retried with
    exponential backoff until it answers or ``stop`` is set (then :class:`Stopped`); a
    misconfigured URL still fails at once. Without it, the first error is raised.
    """
    delay = retry_backoff_s[0] if retry_backoff_s else 0.0
    while True:
        try:
            writer = ClickHouseWriter(client or connect(config.clickhouse_url), config.database)
            writer.ensure_schema()
            return writer
        except ConfigurationError:
            raise
        except Exception as exc:
            if retry_backoff_s is None:
                raise
            log.error(
                "ClickHouse at %s unreachable (%s); retrying in %.1fs",
                redact_url(config.clickhouse_url),
                str(exc).splitlines()[0][:200],
                delay,
            )
            if (stop or threading.Event()).wait(delay):
                raise Stopped from exc
            delay = min(delay * 2, retry_backoff_s[1])


def build_sink(
    config: SinkConfig, writer: ClickHouseWriter, metrics: SinkMetrics | None = None
) -> ClickHouseSink:
    if not config.kafka_bootstrap:
        raise ValueError("kafka_bootstrap is required to build the sink")
    return ClickHouseSink(
        config.kafka_bootstrap,
        config.topics,
        writer,
        group_id=config.group_id,
        consumer_config=config.consumer_config(),
        metrics=metrics,
        max_rejected=config.max_rejected,
        reject_max_ratio=config.reject_max_ratio,
        undecodable_max_ratio=config.undecodable_max_ratio,
    )

"""Prometheus metrics of one sink (names documented in docs/operations.md).

Counted per batch, never per message. A sink built without a registry counts into a private
one, so the consumer code has no "metrics on?" branches.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from meterline.schemas.reasons import REASONS
from meterline.sinks.clickhouse.ddl import SINK_TABLES

TABLES = SINK_TABLES

_SIZE_BUCKETS = (1, 10, 100, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000)
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class SinkMetrics:
    """The sink's counters. ``registry``: the process's registry (None: a private one)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.registry = r
        self.messages_in = Counter(
            "meterline_sink_messages_in", "Kafka messages consumed by the sink", registry=r
        )
        self.batches = Counter(
            "meterline_sink_batches", "batches inserted and committed", registry=r
        )
        self.batch_size = Histogram(
            "meterline_sink_batch_size",
            "messages per sink batch",
            buckets=_SIZE_BUCKETS,
            registry=r,
        )
        rows = Counter(
            "meterline_sink_rows_inserted", "rows inserted into ClickHouse", ["table"], registry=r
        )
        self.rows = {t: rows.labels(table=t) for t in TABLES}
        latency = Histogram(
            "meterline_sink_insert_seconds",
            "duration of one ClickHouse insert",
            ["table"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.insert_seconds = {t: latency.labels(table=t) for t in TABLES}
        self.write_failures = Counter(
            "meterline_sink_write_failures", "failed ClickHouse inserts (retried)", registry=r
        )
        self.commit_failures = Counter(
            "meterline_sink_commit_failures", "offset commits that failed", registry=r
        )
        self._dead_letters = Counter(
            "meterline_sink_dead_letters",
            "messages the sink could not decode or ClickHouse refused, written to dead_letters",
            ["reason"],
            registry=r,
        )
        self.dead_letter_children = {x: self._dead_letters.labels(reason=x) for x in REASONS}
        self.held_partitions = Gauge(
            "meterline_sink_held_partitions",
            "partitions held (paused, not committed) on records this sink cannot decode",
            registry=r,
        )
        self.held_records = Counter(
            "meterline_sink_held_records",
            "undecodable records held instead of dead-lettered (read again by the next sink)",
            registry=r,
        )
        self.lag = Gauge(
            "meterline_consumer_lag",
            "messages behind the high watermark, per consumer group and partition",
            ["group", "topic", "partition"],
            registry=r,
        )

    def dead_letter(self, reason: str) -> None:
        child = self.dead_letter_children.get(reason)
        if child is None:
            child = self.dead_letter_children[reason] = self._dead_letters.labels(reason=reason)
        child.inc()

    def set_lag(self, group: str, lags: Iterable[tuple[str, int, int]]) -> None:
        """Replace the group's lag series with ``(topic, partition, lag)`` (revoked ones go)."""
        self.lag.clear()
        for topic, partition, lag in lags:
            self.lag.labels(group=group, topic=topic, partition=str(partition)).set(lag)

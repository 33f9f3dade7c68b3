"""Topic end offsets and consumer-group lag, read from the broker without joining the group.

Lag of a group on a partition = high watermark - the group's committed offset (the whole
partition, from the low watermark, when nothing is committed yet). Faust commits every few
seconds, so a processor's lag includes what it has processed but not committed yet.
On Tansu the high watermark is the base offset of the last record batch, so lag can read a
few records low (clamped at 0); Kafka reports it exactly.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

PartitionFilter = Callable[[], set[tuple[str, int]]]


@dataclass(frozen=True)
class PartitionOffsets:
    topic: str
    partition: int
    low: int
    high: int


#: group id of the handle that only reads metadata and watermarks (never joins, never commits)
READER_GROUP = "meterline-offset-reader"


class OffsetReader:
    """One librdkafka handle for offset queries. Thread-safe (calls are serialised)."""

    def __init__(self, bootstrap: str, timeout_s: float = 2.0) -> None:
        self.bootstrap = bootstrap
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._consumers: dict[str, Consumer] = {}

    def _consumer(self, group: str) -> Consumer:
        consumer = self._consumers.get(group)
        if consumer is None:
            consumer = self._consumers[group] = Consumer(
                {
                    "bootstrap.servers": self.bootstrap,
                    "group.id": group,  # never subscribes: only reads the group's offsets
                    "enable.auto.commit": False,
                    "log.connection.close": False,
                    "log_level": 2,  # an unreachable broker is reported by readiness, once
                }
            )
        return consumer

    def partitions(self, topics: Iterable[str]) -> list[TopicPartition]:
        with self._lock:
            meta = self._consumer(READER_GROUP).list_topics(timeout=self.timeout_s).topics
        return [
            TopicPartition(t, p)
            for t in topics
            if t in meta and meta[t].error is None
            for p in sorted(meta[t].partitions)
        ]

    def end_offsets(self, topics: Iterable[str]) -> list[PartitionOffsets]:
        tps = self.partitions(topics)
        with self._lock:
            c = self._consumer(READER_GROUP)
            return [
                PartitionOffsets(
                    tp.topic,
                    tp.partition,
                    *c.get_watermark_offsets(tp, timeout=self.timeout_s, cached=False),
                )
                for tp in tps
            ]

    def group_lag(
        self, group: str, topics: Iterable[str], only: PartitionFilter | None = None
    ) -> list[tuple[str, int, int]]:
        """``(topic, partition, lag)`` of ``group`` on ``topics`` (``only``: a subset)."""
        ends = self.end_offsets(topics)
        if only is not None:
            keep = only()
            ends = [e for e in ends if (e.topic, e.partition) in keep]
        if not ends:
            return []
        with self._lock:
            committed = self._consumer(group).committed(
                [TopicPartition(e.topic, e.partition) for e in ends], timeout=self.timeout_s
            )
        at = {(tp.topic, tp.partition): tp.offset for tp in committed}
        out = []
        for e in ends:
            offset = at.get((e.topic, e.partition), -1)
            out.append((e.topic, e.partition, max(0, e.high - (offset if offset >= 0 else e.low))))
        return out

    def close(self) -> None:
        with self._lock:
            for c in self._consumers.values():
                c.close()
            self._consumers.clear()

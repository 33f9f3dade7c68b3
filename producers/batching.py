"""Per-partition batches of raw records, framed as one NDJSON Kafka message each.

:class:`Batcher` only collects; :class:`meterline.producers.client.MeterlineProducer` decides when a
batch is produced (full, lingered long enough, or flushed) and reports delivery of the one
Kafka message to every record in it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Per-record delivery callback, confluent-kafka style: ``(error or None, message)``.
RecordCallback = Callable[[Any, Any], None]


@dataclass(frozen=True)
class BatchConfig:
    """How records are framed. ``max_records <= 1`` turns batching off."""

    max_records: int = 500
    max_bytes: int = 512_000
    linger_s: float = 0.02

    @property
    def enabled(self) -> bool:
        return self.max_records > 1


@dataclass
class Batch:
    topic: str
    partition: int
    key: bytes
    values: list[bytes] = field(default_factory=list)
    callbacks: list[RecordCallback] = field(default_factory=list)
    #: records without a callback of their own: their delivery is only counted, once per
    #: batch for all of them (not a call and a lock per record)
    counted: int = 0
    size: int = 0
    opened_at: float = field(default_factory=time.monotonic)


class Batcher:
    """Open batches by (topic, partition). Not thread-safe: the caller holds a lock."""

    def __init__(self, config: BatchConfig) -> None:
        self.config = config
        self._open: dict[tuple[str, int], Batch] = {}

    def add(
        self,
        topic: str,
        partition: int,
        key: bytes,
        value: bytes,
        callback: RecordCallback | None,
    ) -> list[Batch]:
        """Add one record (``callback`` None: its delivery is only counted); return the
        batches that became ready to produce (0, 1 or 2)."""
        cfg = self.config
        ready: list[Batch] = []
        slot = (topic, partition)
        batch = self._open.get(slot)
        if batch is not None and batch.size + len(value) + 1 > cfg.max_bytes:
            ready.append(self._open.pop(slot))
            batch = None
        if batch is None:
            batch = self._open[slot] = Batch(topic, partition, key)
        batch.values.append(value)
        if callback is None:
            batch.counted += 1
        else:
            batch.callbacks.append(callback)
        batch.size += len(value) + 1
        if len(batch.values) >= cfg.max_records or batch.size >= cfg.max_bytes:
            ready.append(self._open.pop(slot))
        return ready

    def due(self, now: float | None = None) -> list[Batch]:
        """Take the batches open for at least ``linger_s``."""
        now = time.monotonic() if now is None else now
        limit = self.config.linger_s
        slots = [s for s, b in self._open.items() if now - b.opened_at >= limit]
        return [self._open.pop(s) for s in slots]

    def drain(self) -> list[Batch]:
        """Take every open batch."""
        batches = list(self._open.values())
        self._open.clear()
        return batches

    def __len__(self) -> int:
        """Records waiting in open batches."""
        return sum(len(b.values) for b in self._open.values())

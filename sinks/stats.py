"""The sink's in-process counters (tests and ``meterline status`` read them); the Prometheus
ones are :class:`meterline.sinks.metrics.SinkMetrics`."""

from __future__ import annotations

from dataclasses import dataclass, field

from meterline.sinks.batch import TABLE_ORDER


@dataclass
class SinkStats:
    batches: int = 0
    rows: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(TABLE_ORDER, 0)
    )
    write_failures: int = 0
    undecodable: int = 0
    rejected: int = 0
    #: records held (not dead-lettered) because this sink cannot decode them
    held: int = 0
    assignments: int = 0
    revocations: int = 0

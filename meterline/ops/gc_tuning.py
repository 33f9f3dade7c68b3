"""Cyclic-GC settings of meterline's long-running processes: workers and sinks.

Both handle records in batches: every record allocates several short-lived objects (models,
dicts, bytes) that stay alive until the batch's write, so at Python's default thresholds the
collector ran very often and promoted whole batches to the old generation, whose full passes
then scanned everything the process holds. Reference counting frees most objects at once
anyway; cycles are still collected, in larger steps.
"""

from __future__ import annotations

import gc

#: Allocations between two young-generation collections (Python's default: 700), and the
#: young and middle collections between two older ones: the processor and the sink allocate
#: many short-lived objects per event, and the default collects every 700 allocations
#: (figures: docs/benchmarks.md, "2026-11-27, 300,000 events").
GC_THRESHOLDS = (100_000, 50, 100)


def tune_gc() -> None:
    """Fewer cyclic-GC passes for batch processing (see :data:`GC_THRESHOLDS`)."""
    gc.set_threshold(*GC_THRESHOLDS)

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
#: young and middle collections between two older ones. Measured (2026-11-27):
#:
#: * processor worker, 300,000-event benchmark, alternating runs: 108.7-118.8 -> 83.1-90.8
#:   µs/event, end to end 6,488-7,171 -> 7,774-8,325 events/s;
#: * sink thread (with the benchmark's own traffic frozen, ``gc.freeze``): the benchmark
#:   process spent 1.27 s in the collector per 300,000 events, 0.07 s with these.
GC_THRESHOLDS = (100_000, 50, 100)


def tune_gc() -> None:
    """Fewer cyclic-GC passes for batch processing (see :data:`GC_THRESHOLDS`)."""
    gc.set_threshold(*GC_THRESHOLDS)

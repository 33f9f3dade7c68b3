from __future__ import annotations

import gc

from meterline.ops.gc_tuning import GC_THRESHOLDS, tune_gc


def test_the_worker_collects_young_garbage_in_larger_steps() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert GC_THRESHOLDS[0] > before[0]
    finally:
        gc.set_threshold(*before)

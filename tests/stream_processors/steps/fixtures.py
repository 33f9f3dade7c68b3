"""Test helpers over the steps' production API (the path the processor runs)."""

from __future__ import annotations

from meterline.schemas.fast_decode import AnyEvent
from meterline.stream_processors.steps.dedupe import DedupeWindow


def is_duplicate(w: DedupeWindow, event: AnyEvent, in_flight: set[bytes]) -> bool:
    """True if already admitted and marked, or accepted earlier in the same batch."""
    return w.admit(event, in_flight) is None

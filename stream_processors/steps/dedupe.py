"""Dedupe step: drop events whose (project, event_id) was already emitted."""

from __future__ import annotations

import time
from collections.abc import MutableMapping

from schemas import Event

SEP = "\x1f"


def dedupe_key(event: Event) -> str:
    """Dedupe scope: one project never suppresses another project's event_id."""
    return f"{event.project}{SEP}{event.event_id}"


class Deduplicator:
    """Remembers emitted events in ``seen`` (key -> first-emitted epoch seconds).

    Contract: :meth:`mark` must be called only after the event's output was durably
    produced. A crash in between re-emits the event on replay (at-least-once); the
    ClickHouse ReplacingMergeTree keyed by event_id absorbs that repeat. Marking first
    would lose the event instead (OpenMeter #5118, Langfuse #16017).
    """

    def __init__(self, seen: MutableMapping[str, float]) -> None:
        self._seen = seen
        self.duplicates = 0

    def is_duplicate(self, event: Event, in_flight: set[str]) -> bool:
        """True if already emitted, or already accepted earlier in the same batch."""
        key = dedupe_key(event)
        if key in in_flight or key in self._seen:
            self.duplicates += 1
            return True
        in_flight.add(key)
        return False

    def mark(self, event: Event) -> None:
        self._seen[dedupe_key(event)] = time.time()

"""Poison-message storm guard: stop instead of dead-lettering everything (arroyo's DlqLimit).

A few invalid records are dead-lettered and processing goes on. When more than
``max_invalid_ratio`` of the last ``window`` records are invalid (and at least
``min_records`` were seen), something upstream is broken -- a producer writing the wrong
format, a topic mix-up -- and dead-lettering millions of records would only hide it. The
processor raises :class:`PoisonMessageStorm`, the worker stops with that message, and the
batch is not committed: after the fix, processing resumes where it stopped.
"""

from __future__ import annotations

from collections import deque

from stream_processors.errors import ProcessorError


class PoisonMessageStorm(ProcessorError):
    """Too many invalid records in a row. Not recoverable by retrying: fix the input."""


class DlqLimit:
    def __init__(
        self, max_invalid_ratio: float | None = 0.5, window: int = 1_000, min_records: int = 100
    ) -> None:
        if max_invalid_ratio is not None and not 0 < max_invalid_ratio <= 1:
            raise ValueError("max_invalid_ratio must be in (0, 1], or None for no limit")
        self.max_invalid_ratio = max_invalid_ratio
        self.window = window
        self.min_records = min(min_records, window)
        self._last: deque[bool] = deque(maxlen=window)
        self._invalid = 0

    def record(self, valid: bool, reason: str = "") -> None:
        """Count one record. Raises :class:`PoisonMessageStorm` when over the limit."""
        if self.max_invalid_ratio is None:
            return
        if len(self._last) == self.window and not self._last[0]:
            self._invalid -= 1  # the oldest, about to fall out, was invalid
        self._last.append(valid)
        if not valid:
            self._invalid += 1
            seen = len(self._last)
            if seen >= self.min_records and self._invalid > self.max_invalid_ratio * seen:
                raise PoisonMessageStorm(
                    f"poison-message storm: {self._invalid} of the last {seen} records were "
                    f"invalid (limit {self.max_invalid_ratio:.0%}); stopping instead of "
                    f"dead-lettering everything. Last reason: {reason}. Fix the producer, or "
                    "raise METERLINE_DLQ_MAX_RATIO."
                )

"""Find the rows ClickHouse refuses in a batch it rejected, by halving the batch.

    insert(batch) rejected -> insert(first half), insert(second half) -> ... -> one row rejected

Only :class:`~meterline.sinks.errors.SinkRowsRejected` (the data is at fault) splits a batch; any
other
failure propagates, and the caller holds the whole batch and retries it. Each part carries a
deduplication token derived from the batch's token and the part's range, so a retry after a
failure partway repeats the same parts and ClickHouse drops the ones it already applied.
``k`` bad rows among ``n`` cost about ``2k * log2(n)`` inserts.

More than ``max_rejected`` refused rows in one batch is not bad data but something systemic
(a column type changed under the sink, a view that refuses everything): isolation stops and
raises :class:`~meterline.sinks.errors.SinkWriteError`, so the batch is held and retried instead of
being dead-lettered row by row. Small batches (a quiet deployment) never reach that count,
so :class:`RejectionWindow` also holds a batch when more than half of the last ~1,000 rows
would have been refused. (The processor's storm guard is per project instead: a project over
its limit is quarantined and the others go on, ``stream_processors/steps/quarantine.py``.)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from meterline.sinks.errors import SinkRowsRejected, SinkWriteError

#: ``insert(rows, dedup_token)``: raises SinkRowsRejected when the rows' data is at fault.
Insert = Callable[[Sequence[Sequence[Any]], "str | None"], None]

#: Refused rows per batch above which isolation gives up (see the module docstring).
MAX_REJECTED = 100


def insert_isolating(
    insert: Insert,
    rows: Sequence[Sequence[Any]],
    token: str | None,
    *,
    max_rejected: int = MAX_REJECTED,
) -> list[tuple[int, str]]:
    """Insert ``rows``; returns ``(index, reason)`` of each row ClickHouse refused (the
    others are written). Raises :class:`SinkWriteError` for a failure that is not the
    data's, or when more than ``max_rejected`` rows are refused."""
    rejected: list[tuple[int, str]] = []

    def part_token(lo: int, hi: int) -> str | None:
        return None if token is None else f"{token}/{lo}-{hi}"

    def attempt(lo: int, hi: int, tok: str | None) -> None:
        try:
            insert(rows[lo:hi], tok)
        except SinkRowsRejected as exc:
            if hi - lo == 1:
                rejected.append((lo, str(exc.__cause__ or exc)))
                if len(rejected) > max_rejected:
                    raise SinkWriteError(
                        f"ClickHouse refused more than {max_rejected} of {len(rows)} rows in "
                        f"one batch; holding the batch instead of dead-lettering them (a "
                        f"schema change? To dead-letter them, raise METERLINE_SINK_MAX_REJECTED)."
                        f" Last refusal: {rejected[-1][1]}"
                    ) from exc
                return
            mid = (lo + hi) // 2
            attempt(lo, mid, part_token(lo, mid))
            attempt(mid, hi, part_token(mid, hi))

    attempt(0, len(rows), token)
    return rejected


class RejectionWindow:
    """Refused rows among the rows of the last inserts (about ``window`` rows, whole
    inserts). :meth:`check` raises :class:`SinkWriteError` when an insert's refusals would
    make more than ``max_ratio`` of them refused (None: never), once at least ``min_rows``
    were seen; :meth:`record` counts an insert that went through."""

    def __init__(
        self, max_ratio: float | None = 0.5, window: int = 1_000, min_rows: int = 100
    ) -> None:
        if max_ratio is not None and not 0 < max_ratio <= 1:
            raise ValueError("max_ratio must be in (0, 1], or None for no limit")
        self.max_ratio = max_ratio
        self.window = window
        self.min_rows = min(min_rows, window)
        self._inserts: deque[tuple[int, int]] = deque()
        self._rows = 0
        self._rejected = 0

    def check(self, table: str, rows: int, rejected: int, reason: str) -> None:
        """Raise if ``rejected`` of ``rows`` (one insert into ``table``) tips the window."""
        if self.exceeded(rows, rejected):
            seen, refused = self._rows + rows, self._rejected + rejected
            raise SinkWriteError(
                f"ClickHouse refused {refused} of the last {seen} rows (this insert: {rejected} "
                f"of {rows} into {table}); holding the batch instead of dead-lettering them "
                f"(a schema change? To dead-letter them, raise METERLINE_SINK_REJECT_MAX_RATIO "
                f"or set it to 0). Last refusal: {reason}"
            )

    def exceeded(self, rows: int, rejected: int) -> bool:
        """Whether ``rejected`` of ``rows`` more would make more than ``max_ratio`` of the
        window refused (never below ``min_rows``, nor without a refusal)."""
        seen, refused = self._rows + rows, self._rejected + rejected
        if self.max_ratio is None or not rejected or seen < self.min_rows:
            return False
        return refused > self.max_ratio * seen

    def record(self, rows: int, rejected: int) -> None:
        self._inserts.append((rows, rejected))
        self._rows += rows
        self._rejected += rejected
        while self._rows - self._inserts[0][0] >= self.window:
            old_rows, old_rejected = self._inserts.popleft()
            self._rows -= old_rows
            self._rejected -= old_rejected

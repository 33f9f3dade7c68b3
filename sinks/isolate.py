"""Find the rows ClickHouse refuses in a batch it rejected, by halving the batch.

    insert(batch) rejected -> insert(first half), insert(second half) -> ... -> one row rejected

Only :class:`~sinks.errors.SinkRowsRejected` (the data is at fault) splits a batch; any other
failure propagates, and the caller holds the whole batch and retries it. Each part carries a
deduplication token derived from the batch's token and the part's range, so a retry after a
failure partway repeats the same parts and ClickHouse drops the ones it already applied.
``k`` bad rows among ``n`` cost about ``2k * log2(n)`` inserts.

More than ``max_rejected`` refused rows in one batch is not bad data but something systemic
(a column type changed under the sink, a view that refuses everything): isolation stops and
raises :class:`~sinks.errors.SinkWriteError`, so the batch is held and retried instead of
being dead-lettered row by row. The processor's dead-letter storm limit works the same way
(``stream_processors/steps/dlq_limit.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sinks.errors import SinkRowsRejected, SinkWriteError

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
                        f"one batch; not dead-lettering them one by one (a schema change?). "
                        f"Last refusal: {rejected[-1][1]}"
                    ) from exc
                return
            mid = (lo + hi) // 2
            attempt(lo, mid, part_token(lo, mid))
            attempt(mid, hi, part_token(mid, hi))

    attempt(0, len(rows), token)
    return rejected

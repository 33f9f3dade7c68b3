"""Isolating the rows ClickHouse refuses: the halving, its tokens and its limits
(``sinks/isolate.py``). The insert here is a plain function; the same path against chDB is
in ``tests/sinks/test_consumer.py``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from meterline.sinks.errors import SinkRowsRejected, SinkWriteError
from meterline.sinks.isolate import RejectionWindow, insert_isolating


class Table:
    """Accepts a part unless it holds a row in ``bad``; records what it wrote and every token."""

    def __init__(self, bad: set[int], fail_first: int = 0) -> None:
        self.bad = bad
        self.written: list[int] = []
        self.tokens: list[str | None] = []
        self.fail_first = fail_first

    def insert(self, rows: Sequence[Sequence[Any]], token: str | None) -> None:
        self.tokens.append(token)
        if self.fail_first:
            self.fail_first -= 1
            raise SinkWriteError("connection refused")
        refused = [r[0] for r in rows if r[0] in self.bad]
        if refused:
            raise SinkRowsRejected(f"row {refused[0]} refused") from ValueError(
                f"value of row {refused[0]} out of range"
            )
        self.written.extend(r[0] for r in rows)


ROWS = [(i,) for i in range(100)]


def test_the_refused_rows_are_found_and_every_other_row_is_written_once() -> None:
    table = Table(bad={3, 64, 65})
    rejected = insert_isolating(table.insert, ROWS, "tok")
    assert [i for i, _ in rejected] == [3, 64, 65]
    assert rejected[0][1] == "value of row 3 out of range"  # the cause, not the wrapper
    assert sorted(table.written) == [i for i in range(100) if i not in {3, 64, 65}]
    assert len(table.tokens) < 50  # about 2k * log2(n) inserts, not n


def test_a_clean_batch_is_one_insert_with_the_batch_token() -> None:
    table = Table(bad=set())
    assert insert_isolating(table.insert, ROWS, "tok") == []
    assert table.tokens == ["tok"]


def test_parts_carry_distinct_tokens_that_a_retry_repeats() -> None:
    first, second = Table(bad={10}), Table(bad={10})
    insert_isolating(first.insert, ROWS, "tok")
    insert_isolating(second.insert, ROWS, "tok")
    assert first.tokens == second.tokens  # a retry repeats the same parts: ClickHouse drops them
    assert len(set(first.tokens)) == len(first.tokens)
    assert first.tokens[0] == "tok" and first.tokens[1] == "tok/0-50"
    assert insert_isolating(Table(bad={1}).insert, ROWS, None) == [
        (1, "value of row 1 out of range")
    ]


def test_a_failure_that_is_not_the_datas_propagates_and_nothing_is_rejected() -> None:
    table = Table(bad={3}, fail_first=1)
    with pytest.raises(SinkWriteError, match="connection refused") as info:
        insert_isolating(table.insert, ROWS, "tok")
    assert not isinstance(info.value, SinkRowsRejected)
    assert table.written == []


def test_more_refusals_than_the_limit_hold_the_batch_instead_of_dead_lettering_it() -> None:
    table = Table(bad=set(range(0, 100, 2)))
    with pytest.raises(SinkWriteError, match="more than 5 of 100 rows") as info:
        insert_isolating(table.insert, ROWS, "tok", max_rejected=5)
    assert not isinstance(info.value, SinkRowsRejected)  # the caller retries, it does not split


def test_the_window_holds_once_most_recent_rows_are_refused_however_small_the_inserts() -> None:
    window = RejectionWindow(max_ratio=0.5, window=1_000, min_rows=100)
    for _ in range(9):  # a quiet sink: inserts of 10 rows, one refused each
        window.check("events", 10, 1, "r")
        window.record(10, 1)
    window.check("events", 10, 9, "r")  # 18 of 100 refused: dead-lettered
    window.record(10, 9)
    for _ in range(6):
        window.check("events", 10, 10, "r")
        window.record(10, 10)  # 78 of 160
    with pytest.raises(SinkWriteError, match="refused 88 of the last 170 rows"):
        window.check("events", 10, 10, "out of range")
    window.check("events", 10, 0, "r")  # an insert with no refusal never raises


def test_the_window_forgets_old_inserts() -> None:
    window = RejectionWindow(max_ratio=0.5, window=100, min_rows=10)
    window.record(50, 50)
    for _ in range(10):
        window.record(20, 0)
    window.check("events", 20, 10, "r")  # the 50 refusals fell out of the window

"""Commits hold while the record at the committed offset is unacknowledged (Faust's own
check lets exactly one such record through)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from faust.transport.drivers.aiokafka import Consumer as FaustConsumer
from intervaltree import IntervalTree

from stream_processors.commits import StrictCommits
from stream_processors.end_offsets import EndProbingConsumer

TP = ("raw", 0)

_Strict = EndProbingConsumer  # the worker's consumer


def _consumer(cls: type, committed: int | None, acked: list[int]) -> Any:
    """Only the bookkeeping ``_new_offset`` reads (no transport, no app)."""
    c = object.__new__(cls)
    c._acked = defaultdict(list, {TP: list(acked)})
    c._acked_index = defaultdict(set, {TP: set(acked)})
    c._committed_offset = defaultdict(lambda: None, {TP: committed})
    c._gap = defaultdict(IntervalTree)
    return c


def test_faust_alone_commits_past_one_unacknowledged_record() -> None:
    # the upstream behaviour this module exists for: record 10 was never acknowledged
    assert _consumer(FaustConsumer, 10, [11, 12, 13])._new_offset(TP) == 14


def test_strict_commits_wait_for_the_record_at_the_committed_offset() -> None:
    for committed in (0, 10):  # 0: Faust reads it as "unknown" and checks nothing
        c = _consumer(_Strict, committed, [committed + 1, committed + 2])
        assert c._new_offset(TP) is None
        c._acked[TP].append(committed)  # the record is acknowledged: commit them all
        assert c._new_offset(TP) == committed + 3


def test_strict_commits_pass_a_gap_faust_saw_in_the_fetched_offsets() -> None:
    c = _consumer(_Strict, 10, [12, 13])
    c._gap[TP].addi(10, 12)  # offsets 10-11 do not exist (compaction, markers)
    assert c._new_offset(TP) == 14
    after_seek = _consumer(_Strict, 10, [15, 16])
    after_seek._gap[TP].addi(11, 15)  # seek to 10, first record 15: Faust's gap starts at 11
    assert after_seek._new_offset(TP) == 17


def test_strict_commits_change_nothing_else() -> None:
    assert _consumer(_Strict, 10, [10, 11, 13])._new_offset(TP) == 12
    assert _consumer(_Strict, None, [4, 5])._new_offset(TP) == 6  # before any seek
    assert _consumer(_Strict, 10, [])._new_offset(TP) is None


def test_the_worker_consumer_commits_strictly() -> None:
    assert issubclass(EndProbingConsumer, StrictCommits)
    assert EndProbingConsumer.__mro__.index(StrictCommits) < EndProbingConsumer.__mro__.index(
        FaustConsumer
    )

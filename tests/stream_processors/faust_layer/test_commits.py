"""Commits hold while the record at the committed offset is unacknowledged (Faust's own
check lets exactly one such record through)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import pytest
from faust.transport.drivers.aiokafka import Consumer as FaustConsumer
from intervaltree import IntervalTree

from meterline.stream_processors.faust_layer.commits import (
    MAX_REREADS,
    RESOLVE_AFTER_S,
    StrictCommits,
)
from meterline.stream_processors.faust_layer.end_offsets import EndProbingConsumer

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


def test_strict_commits_pass_only_a_proven_gap_at_the_committed_offset() -> None:
    c = _consumer(_Strict, 10, [12, 13])
    c._gap[TP].addi(10, 12)  # offsets 10-11 are not in the log (resolved from it)
    assert c._new_offset(TP) == 14
    inferred = _consumer(_Strict, 10, [15, 16])
    inferred._gap[TP].addi(11, 15)  # what Faust infers after a seek to 10: not evidence
    assert inferred._new_offset(TP) is None


def test_faust_inferred_gaps_are_not_recorded() -> None:
    c = _consumer(_Strict, 10, [15])
    asyncio.run(c._add_gap(TP, 11, 14))
    assert not c._gap[TP]


def test_strict_commits_change_nothing_else() -> None:
    assert _consumer(_Strict, 10, [10, 11, 13])._new_offset(TP) == 12
    assert _consumer(_Strict, 10, [])._new_offset(TP) is None


def test_an_unknown_committed_offset_holds_until_the_seek_then_reads_as_0() -> None:
    before_seek = _consumer(_Strict, None, [4, 5])  # between assignment and seek
    assert before_seek._new_offset(TP) is None
    after_seek = _consumer(_Strict, None, [4, 5])
    after_seek._seeked = {TP}  # never committed: the group reads from the earliest offset
    assert after_seek._new_offset(TP) is None  # 0-3 not acknowledged
    from_start = _consumer(_Strict, None, [0, 1])
    from_start._seeked = {TP}
    assert from_start._new_offset(TP) == 2


def test_the_seek_after_an_assignment_and_a_revoke_mark_partitions() -> None:
    class Base:
        async def perform_seek(self) -> None: ...

        async def on_partitions_revoked(self, revoked: Any) -> None: ...

        def assignment(self) -> set[Any]:
            return {TP, ("raw", 1)}

    class Consumer(StrictCommits, Base): ...

    c = Consumer()
    asyncio.run(c.perform_seek())
    assert c._seeked == {TP, ("raw", 1)}
    asyncio.run(c.on_partitions_revoked({TP}))
    assert c._seeked == {("raw", 1)}


def test_the_worker_consumer_commits_strictly() -> None:
    assert issubclass(EndProbingConsumer, StrictCommits)
    assert EndProbingConsumer.__mro__.index(StrictCommits) < EndProbingConsumer.__mro__.index(
        FaustConsumer
    )


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Message:
    def __init__(self, tp: Any, offset: int) -> None:
        self.tp, self.offset = tp, offset


def _resolving(
    committed: int, acked: list[int], in_log: int | None
) -> tuple[Any, _Clock, list[tuple[Any, int]]]:
    """A strict consumer whose log starts the held partition at ``in_log`` (None: unknown),
    whose seeks are recorded and whose clock the test moves."""
    c = _consumer(_Strict, committed, acked)
    clock, seeks = _Clock(), []
    c.clock = clock
    c._unacked_messages = set()
    c.first_offset_from = lambda tp, offset: in_log

    async def seek(tp: Any, offset: int) -> None:
        seeks.append((tp, offset))

    c.seek = seek
    return c, clock, seeks


async def _settle() -> None:
    for _ in range(20):  # the log is read in a thread
        await asyncio.sleep(0.01)


def test_a_lasting_hold_on_a_record_in_the_log_rereads_the_partition_from_it() -> None:
    async def scenario() -> None:
        c, clock, seeks = _resolving(51, [52, 53], in_log=51)
        assert c._new_offset(TP) is None  # the hold starts
        clock.now += RESOLVE_AFTER_S - 1
        assert c._new_offset(TP) is None
        await _settle()
        assert seeks == []  # not yet
        clock.now += 1
        assert c._new_offset(TP) is None
        await _settle()
        assert seeks == [(TP, 51)]  # re-read from the record that never came
        c._acked[TP].append(51)  # it comes: everything commits
        assert c._new_offset(TP) == 54

    asyncio.run(scenario())


def test_a_lasting_hold_on_offsets_absent_from_the_log_commits_past_them() -> None:
    async def scenario() -> None:
        c, clock, seeks = _resolving(51, [60, 61], in_log=60)  # 51-59: markers, retention
        c._new_offset(TP)
        clock.now += RESOLVE_AFTER_S
        assert c._new_offset(TP) is None
        await _settle()
        assert seeks == [] and c._new_offset(TP) == 62

    asyncio.run(scenario())


def test_no_resolving_while_the_held_record_is_being_processed() -> None:
    async def scenario() -> None:
        c, clock, seeks = _resolving(51, [52], in_log=51)
        c._unacked_messages.add(_Message(TP, 51))  # delivered, in a slow batch
        c._new_offset(TP)
        clock.now += 10 * RESOLVE_AFTER_S
        c._new_offset(TP)
        await _settle()
        assert seeks == []

    asyncio.run(scenario())


def test_rereads_stop_after_max_rereads(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        c, clock, seeks = _resolving(51, [52], in_log=None)  # log unreadable: re-read
        c._new_offset(TP)
        for _ in range(MAX_REREADS + 3):
            clock.now += RESOLVE_AFTER_S
            c._new_offset(TP)
            await _settle()
        assert seeks == [(TP, 51)] * MAX_REREADS
        errors = [r for r in caplog.records if r.levelname == "ERROR"]
        assert len(errors) == 1 and "never came" in errors[0].getMessage()

    asyncio.run(scenario())


def test_frozen_commits_commit_nothing() -> None:
    c = _consumer(_Strict, 10, [10, 11])
    c.freeze_commits("the agent stopped mid-take")
    assert c._new_offset(TP) is None


class _Topics:
    def __init__(self, acking: set[str]) -> None:
        self.acking = acking

    def acks_enabled_for(self, topic: str) -> bool:
        return topic in self.acking


class _TP(tuple[str, int]):
    @property
    def topic(self) -> str:
        return self[0]


def test_a_partition_read_past_its_commit_with_nothing_acknowledged_is_resolved() -> None:
    # seen after kill -9 and restart: telemetry[1] committed at 15, read to 25, none of it
    # reached the agent; Faust asks only partitions with acknowledgements for a commit
    async def scenario() -> None:
        tp, changelog = _TP(("raw", 0)), _TP(("app-trajectories-changelog", 0))
        c, clock, seeks = _resolving(15, [], in_log=15)
        c._committed_offset = defaultdict(lambda: None, {tp: 15})
        c._acked = defaultdict(list)
        c._seeked = {tp, changelog}
        c._read_offset = {tp: 25, changelog: 657}
        c.app = type("App", (), {"topics": _Topics({"raw"})})()
        assert list(c._filter_tps_with_pending_acks()) == [tp]  # the changelog never
        assert c._new_offset(tp) is None  # the hold starts
        clock.now += RESOLVE_AFTER_S
        assert c._new_offset(tp) is None
        await _settle()
        assert seeks == [(tp, 15)]  # re-read from the committed offset
        assert c._new_offset(changelog) is None
        c._read_offset[tp] = 14  # everything processed and committed: nothing to hold
        c._committed_offset[tp] = 26
        assert c._new_offset(tp) is None

    asyncio.run(scenario())

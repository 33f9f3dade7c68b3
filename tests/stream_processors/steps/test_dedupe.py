from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from meterline.schemas import ActionEvent
from meterline.stream_processors.steps.dedupe import (
    DAY_S,
    DedupeWindow,
    dedupe_key,
    digest,
    pack,
    split_digests,
)
from tests.stream_processors.steps.fixtures import is_duplicate

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)


class Clock:
    """Processing time, moved by the test."""

    def __init__(self, at: datetime = T0) -> None:
        self.now = at.timestamp()

    def __call__(self) -> float:
        return self.now

    def pass_(self, **delta: float) -> None:
        self.now += timedelta(**delta).total_seconds()


def ev(event_id: str, project: str = "p", at: datetime = T0) -> ActionEvent:
    return ActionEvent(event_id=event_id, name="a", project=project, timestamp=at)


def mark(w: DedupeWindow, *events: ActionEvent) -> None:
    """Admit and mark, as a batch whose outputs were acknowledged does."""
    w.advance()
    for e in events:
        w.add(w.bucket, [digest(e)])
    w.expire()


def test_duplicates_within_a_batch_and_across_batches_are_dropped() -> None:
    w = DedupeWindow()
    batch: set[bytes] = set()
    assert not is_duplicate(w, ev("1"), batch)
    assert is_duplicate(w, ev("1"), batch)  # same batch
    mark(w, ev("1"))
    assert is_duplicate(w, ev("1"), set())  # later batch
    assert w.duplicates == 2


def test_nothing_is_seen_until_marked() -> None:
    """A batch whose output was not acknowledged is replayed, not dropped."""
    w = DedupeWindow()
    assert not is_duplicate(w, ev("1"), set())
    assert not is_duplicate(w, ev("1"), set())
    assert len(w) == 0


def test_dedupe_is_scoped_by_project() -> None:
    w = DedupeWindow()
    mark(w, ev("1", project="a"))
    assert not is_duplicate(w, ev("1", project="b"), set())
    assert dedupe_key(ev("1", "a")) != dedupe_key(ev("1", "b"))


def test_a_repeat_with_another_timestamp_is_dropped_and_the_first_copy_wins() -> None:
    """A retry across midnight, a re-run days later, a copy dated earlier: the first admitted
    copy is the one kept, whatever the repeats' timestamps (issue 21, item 1)."""
    clock = Clock()
    w = DedupeWindow(clock=clock)
    first = ev("1", at=datetime(2026, 11, 1, 23, 59, 59, 900_000, tzinfo=UTC))
    assert w.admit(first, set()) == (digest(first), w.bucket)
    mark(w, first)
    repeats = [
        ev("1", at=datetime(2026, 11, 2, 0, 0, 0, 100_000, tzinfo=UTC)),  # the next day
        ev("1", at=datetime(2026, 11, 5, 9, tzinfo=UTC)),  # days later
        ev("1", at=datetime(2026, 10, 1, tzinfo=UTC)),  # dated a month earlier
    ]
    for repeat in repeats:
        clock.pass_(days=2)
        assert is_duplicate(w, repeat, set())
    assert w.duplicates == 3
    assert len(w) == 1


def test_an_event_is_remembered_for_the_window_of_processing_time_then_forgotten() -> None:
    clock = Clock()
    w = DedupeWindow(window_s=2 * DAY_S, clock=clock)
    mark(w, ev("old"))
    first_bucket = w.bucket
    clock.pass_(days=2)  # the window's last bucket: still remembered
    assert is_duplicate(w, ev("old", at=T0 + timedelta(days=2)), set())
    mark(w, ev("new", at=T0 - timedelta(days=30)))  # an old timestamp expires nothing
    assert len(w) == 2
    clock.pass_(days=1)
    mark(w)
    assert first_bucket not in w._buckets and len(w) == 1 and w.expired == 1
    # admitted more than a window ago: a repeat passes (see docs/architecture.md, Guarantee)
    assert not is_duplicate(w, ev("old"), set())
    assert is_duplicate(w, ev("new"), set())


def test_timestamps_ahead_of_processing_time_do_not_expire_the_window() -> None:
    clock = Clock()
    w = DedupeWindow(window_s=DAY_S, clock=clock)
    mark(w, ev("1"))
    mark(w, ev("2", at=T0 + timedelta(days=365)))
    assert is_duplicate(w, ev("1"), set()) and len(w) == 2


def test_a_digest_added_again_keeps_the_bucket_added_last() -> None:
    """A rebuild adds buckets oldest first: a digest persisted twice expires with the newer."""
    clock = Clock()
    w = DedupeWindow(window_s=DAY_S, clock=clock)
    d = digest(ev("1"))
    w.add(w.bucket - 1, [d])
    w.add(w.bucket, [d])
    assert w.expire() == [] and len(w) == 1
    clock.pass_(days=1)
    w.advance()
    assert w.expire() == [w.bucket - 2] and len(w) == 1  # still in the newer bucket
    clock.pass_(days=1)
    w.advance()
    w.expire()
    assert len(w) == 0 and w.expired == 1


def test_the_window_never_moves_back() -> None:
    clock = Clock()
    w = DedupeWindow(clock=clock)
    bucket = w.bucket
    w.advance(clock() - 3 * DAY_S)
    assert w.bucket == bucket


def test_window_must_cover_a_bucket() -> None:
    with pytest.raises(ValueError, match="at least one bucket"):
        DedupeWindow(window_s=60)


def test_digests_pack_and_split() -> None:
    ds = [digest(ev(str(i))) for i in range(5)]
    assert list(split_digests(pack(ds))) == ds

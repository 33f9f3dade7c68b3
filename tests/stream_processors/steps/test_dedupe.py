from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas import ActionEvent
from stream_processors.steps.dedupe import (
    DAY_S,
    DedupeWindow,
    dedupe_key,
    digest,
    pack,
    split_digests,
)

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)


def ev(event_id: str, project: str = "p", at: datetime = T0) -> ActionEvent:
    return ActionEvent(event_id=event_id, name="a", project=project, timestamp=at)


def mark(w: DedupeWindow, *events: ActionEvent) -> None:
    for e in events:
        w.add(w.bucket_of(e), [digest(e)])


def test_duplicates_within_a_batch_and_across_batches_are_dropped() -> None:
    w = DedupeWindow()
    batch: set[bytes] = set()
    assert not w.is_duplicate(ev("1"), batch)
    assert w.is_duplicate(ev("1"), batch)  # same batch
    mark(w, ev("1"))
    assert w.is_duplicate(ev("1"), set())  # later batch
    assert w.duplicates == 2


def test_nothing_is_seen_until_marked() -> None:
    """A batch whose output was not acknowledged is replayed, not dropped."""
    w = DedupeWindow()
    assert not w.is_duplicate(ev("1"), set())
    assert not w.is_duplicate(ev("1"), set())
    assert len(w) == 0


def test_dedupe_is_scoped_by_project() -> None:
    w = DedupeWindow()
    mark(w, ev("1", project="a"))
    assert not w.is_duplicate(ev("1", project="b"), set())
    assert dedupe_key(ev("1", "a")) != dedupe_key(ev("1", "b"))


def test_buckets_older_than_the_window_are_forgotten_and_counted() -> None:
    w = DedupeWindow(window_s=2 * DAY_S)
    old = ev("old", at=T0)
    mark(w, old)
    mark(w, ev("new", at=T0 + timedelta(days=3)))
    assert w.expire() == [w.bucket_of(old)]
    assert len(w) == 1
    # a repeat older than the window passes (ClickHouse is the backstop) and is counted
    assert not w.is_duplicate(old, set())
    assert w.outside_window == 1


def test_window_must_cover_a_bucket() -> None:
    with pytest.raises(ValueError, match="at least one bucket"):
        DedupeWindow(window_s=60)


def test_digests_pack_and_split() -> None:
    ds = [digest(ev(str(i))) for i in range(5)]
    assert list(split_digests(pack(ds))) == ds

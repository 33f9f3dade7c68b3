from __future__ import annotations

from schemas import ActionEvent
from stream_processors.steps.dedupe import Deduplicator, dedupe_key


def ev(event_id: str, project: str = "p") -> ActionEvent:
    return ActionEvent(event_id=event_id, name="a", project=project)


def test_duplicates_within_a_batch_and_across_batches_are_dropped() -> None:
    seen: dict[str, float] = {}
    d = Deduplicator(seen)
    batch: set[str] = set()
    assert not d.is_duplicate(ev("1"), batch)
    assert d.is_duplicate(ev("1"), batch)  # same batch
    d.mark(ev("1"))
    assert d.is_duplicate(ev("1"), set())  # later batch
    assert d.duplicates == 2


def test_nothing_is_seen_until_marked() -> None:
    """A batch whose output was not acknowledged is replayed, not dropped."""
    seen: dict[str, float] = {}
    d = Deduplicator(seen)
    assert not d.is_duplicate(ev("1"), set())
    assert not d.is_duplicate(ev("1"), set())  # not marked: the replay goes through
    assert seen == {}


def test_dedupe_is_scoped_by_project() -> None:
    d = Deduplicator({})
    d.mark(ev("1", project="a"))
    assert not d.is_duplicate(ev("1", project="b"), set())
    assert dedupe_key(ev("1", "a")) != dedupe_key(ev("1", "b"))

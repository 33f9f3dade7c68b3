from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from schemas import ActionEvent
from stream_processors.dedupe_store import PersistentDedupe
from stream_processors.steps.dedupe import DAY_S, DedupeWindow

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)


class FakeTable:
    """The two things PersistentDedupe uses of a Faust table: its store and its changelog."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.changelog: list[tuple[int, str, bytes | None]] = []

    def send_changelog(self, partition: int, key: Any, value: Any) -> None:
        self.changelog.append((partition, key, value))


def ev(i: int, at: datetime = T0) -> ActionEvent:
    return ActionEvent(event_id=f"e{i}", name="a", timestamp=at)


def test_one_changelog_record_per_partition_and_bucket_per_batch() -> None:
    table = FakeTable()
    store = PersistentDedupe(table, DedupeWindow())
    store.mark([(0, 10, ev(1)), (0, 11, ev(2)), (1, 5, ev(3))])
    day = int(T0.timestamp()) // DAY_S
    assert sorted((p, k) for p, k, _ in table.changelog) == [(0, f"0/{day}/11"), (1, f"1/{day}/5")]
    assert store.window.is_duplicate(ev(2), set())


def test_a_restarted_worker_remembers_what_was_emitted() -> None:
    table = FakeTable()
    PersistentDedupe(table, DedupeWindow()).mark([(0, 1, ev(1)), (2, 7, ev(2))])
    restarted = PersistentDedupe(table, DedupeWindow())  # same store, as after recovery
    assert restarted.rebuild() == 2
    assert restarted.window.is_duplicate(ev(1), set())
    assert not restarted.window.is_duplicate(ev(3), set())


def test_expired_buckets_are_deleted_from_the_changelog() -> None:
    table = FakeTable()
    store = PersistentDedupe(table, DedupeWindow(window_s=DAY_S))
    store.mark([(0, 1, ev(1))])
    store.mark([(0, 2, ev(2, at=T0 + timedelta(days=5)))])
    assert len(table.data) == 1
    assert table.changelog[-1][2] is None  # tombstone for the expired blob


def test_marking_what_admit_returned_persists_what_marking_the_events_does() -> None:
    """The processor persists the (digest, bucket) the window computed when it admitted each
    event (``mark_seen``), instead of computing them again (``mark``)."""
    events = [(0, 10, ev(1)), (0, 11, ev(2)), (1, 5, ev(3, T0 - timedelta(days=2)))]
    by_events, by_seen = FakeTable(), FakeTable()
    PersistentDedupe(by_events, DedupeWindow()).mark(events)
    store = PersistentDedupe(by_seen, DedupeWindow())
    in_flight: set[bytes] = set()
    seen = [(p, o, store.window.admit(e, in_flight)) for p, o, e in events]
    assert store.window.admit(ev(2), in_flight) is None  # a duplicate within the batch
    store.mark_seen([(p, o, s) for p, o, s in seen if s is not None])
    assert (by_seen.data, by_seen.changelog) == (by_events.data, by_events.changelog)

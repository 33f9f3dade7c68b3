from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from meterline.schemas import ActionEvent
from meterline.schemas.fast_decode import AnyEvent
from meterline.stream_processors.state.dedupe import PersistentDedupe
from meterline.stream_processors.steps.dedupe import DAY_S, DedupeWindow, digest
from tests.stream_processors.steps.fixtures import is_duplicate

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
NOW = datetime(2026, 11, 3, 12, tzinfo=UTC)  # processing time, two days after T0


class Clock:
    def __init__(self, at: datetime = NOW) -> None:
        self.now = at.timestamp()

    def __call__(self) -> float:
        return self.now


def window(clock: Clock | None = None, **kwargs: Any) -> DedupeWindow:
    return DedupeWindow(clock=clock or Clock(), **kwargs)


class FakeTable:
    """The two things PersistentDedupe uses of a Faust table: its store and its changelog."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.changelog: list[tuple[int, str, bytes | None]] = []

    def send_changelog(self, partition: int, key: Any, value: Any) -> None:
        self.changelog.append((partition, key, value))


def mark(store: PersistentDedupe, accepted: list[tuple[int, int, AnyEvent]]) -> None:
    """Persist ``(partition, offset, event)`` triples admitted in the window's current
    bucket, through ``mark_seen`` as the processor does."""
    bucket = store.window.bucket
    store.mark_seen([(p, offset, (digest(e), bucket)) for p, offset, e in accepted])


def ev(i: int, at: datetime = T0) -> ActionEvent:
    return ActionEvent(event_id=f"e{i}", name="a", timestamp=at)


def test_one_changelog_record_per_partition_and_bucket_per_batch() -> None:
    table = FakeTable()
    store = PersistentDedupe(table, window())
    mark(store, [(0, 10, ev(1)), (0, 11, ev(2)), (1, 5, ev(3, T0 - timedelta(days=3)))])
    day = int(NOW.timestamp()) // DAY_S  # the bucket of processing time, not of the events
    assert sorted((p, k) for p, k, _ in table.changelog) == [(0, f"0/{day}/11"), (1, f"1/{day}/5")]
    assert is_duplicate(store.window, ev(2), set())


def test_a_restarted_worker_remembers_what_was_emitted() -> None:
    table = FakeTable()
    mark(PersistentDedupe(table, window()), [(0, 1, ev(1)), (2, 7, ev(2))])
    restarted = PersistentDedupe(table, window())  # same store, as after recovery
    assert restarted.rebuild() == 2
    assert is_duplicate(restarted.window, ev(1), set())
    assert not is_duplicate(restarted.window, ev(3), set())


def test_expired_buckets_are_deleted_from_the_changelog() -> None:
    table, clock = FakeTable(), Clock()
    store = PersistentDedupe(table, window(clock, window_s=DAY_S))
    mark(store, [(0, 1, ev(1))])
    clock.now += 2 * DAY_S
    store.window.advance()
    mark(store, [(0, 2, ev(2, at=T0 - timedelta(days=5)))])  # its old timestamp: no matter
    assert len(table.data) == 1
    assert table.changelog[-1][2] is None  # tombstone for the expired blob
    assert not is_duplicate(store.window, ev(1), set())


def test_a_rebuilt_window_holds_every_bucket_of_the_window_whatever_the_timestamps() -> None:
    """After a restart, a repeat dated on another day than its first copy is still dropped,
    and buckets that expired while the worker was down are forgotten and deleted."""
    table, clock = FakeTable(), Clock()
    store = PersistentDedupe(table, window(clock, window_s=3 * DAY_S))
    mark(store, [(0, 1, ev(1, at=datetime(2026, 11, 3, 23, 59, 59, 900_000, tzinfo=UTC)))])
    clock.now += DAY_S
    store.window.advance()
    mark(store, [(0, 2, ev(2))])
    clock.now += 3 * DAY_S  # down for three days: ev(1)'s bucket is out of the window
    restarted = PersistentDedupe(table, window(clock, window_s=3 * DAY_S))
    assert restarted.rebuild() == 1
    assert not is_duplicate(restarted.window, ev(1), set())
    assert is_duplicate(restarted.window, ev(2, at=T0 + timedelta(days=4)), set())
    assert len(table.data) == 1 and table.changelog[-1][2] is None


def test_marking_what_admit_returned_persists_what_marking_the_events_does() -> None:
    """The processor persists the (digest, bucket) the window computed when it admitted each
    event (``mark_seen``), the same as computing them again from the events (``mark``)."""
    events = [(0, 10, ev(1)), (0, 11, ev(2)), (1, 5, ev(3, T0 - timedelta(days=2)))]
    by_events, by_seen = FakeTable(), FakeTable()
    mark(PersistentDedupe(by_events, window()), events)
    store = PersistentDedupe(by_seen, window())
    in_flight: set[bytes] = set()
    seen = [(p, o, store.window.admit(e, in_flight)) for p, o, e in events]
    assert store.window.admit(ev(2), in_flight) is None  # a duplicate within the batch
    store.mark_seen([(p, o, s) for p, o, s in seen if s is not None])
    assert (by_seen.data, by_seen.changelog) == (by_events.data, by_events.changelog)

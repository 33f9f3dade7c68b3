from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson

from meterline.schemas import (
    VERSION_JOINED,
    VERSION_UNJOINED,
    ActionEvent,
    TelemetryEvent,
    TrajectoryRecord,
    TrajectoryStatus,
)
from meterline.schemas.fast_decode import FastActionEvent
from meterline.stream_processors.state.writeback import WriteBack
from meterline.stream_processors.steps.join import TrajectoryJoiner, trace_key
from meterline.stream_processors.steps.merge import merge_json
from meterline.stream_processors.steps.validate import DEFAULT_MAX_RECORD_BYTES, validate
from tests.stream_processors.state.test_writeback import Store
from tests.stream_processors.steps.fixtures import apply, join, sweep


def joiner(**kw: Any) -> TrajectoryJoiner:
    return TrajectoryJoiner({}, {}, **kw)


class _Changelog:
    """Records each changelog message's key and serialised value size."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []

    def send(self, partition: int, key: str, value: Any) -> None:
        self.sent.append((key, 0 if value is None else len(orjson.dumps(value))))


def test_event_after_its_trajectory_is_joined() -> None:
    j = joiner()
    apply(j, TrajectoryRecord(trace_id="t", user_id="u", agent_id="a"))
    out = join(j, ActionEvent(event_id="e", name="x", trace_id="t"))
    assert out is not None and out.joined and out.version == VERSION_JOINED
    assert out.trajectory is not None and out.trajectory.user_id == "u"


def test_early_event_goes_out_unjoined_then_rejoins_with_a_higher_version() -> None:
    j = joiner()
    early = TelemetryEvent(event_id="e", event_type="user.accept", trace_id="t")
    first = join(j, early)
    assert first is not None and not first.joined and first.version == VERSION_UNJOINED
    state, late = apply(j, TrajectoryRecord(trace_id="t", user_id="u"))
    assert [e.event for e in late] == [early]
    assert late[0].version > first.version and late[0].joined
    assert state.version == 1
    _, again = apply(j, TrajectoryRecord(trace_id="t", status=TrajectoryStatus.SUCCESS))
    assert again == []  # released once


def test_events_without_trace_pass_through_unjoined() -> None:
    j = joiner()
    out = join(j, ActionEvent(event_id="e", name="x"))
    assert out is not None and not out.joined and j.unjoined == 1


def test_trajectories_are_scoped_by_project() -> None:
    j = joiner()
    apply(j, TrajectoryRecord(project="a", trace_id="t"))
    out = join(j, ActionEvent(project="b", event_id="e", name="x", trace_id="t"))
    assert out is not None and not out.joined


def test_pending_is_bounded_per_trace_and_overflow_is_counted() -> None:
    j = joiner(max_pending_per_trace=2)
    for i in range(3):
        join(j, ActionEvent(event_id=f"e{i}", name="x", trace_id="t"))
    assert j.pending_overflow == 1
    _, late = apply(j, TrajectoryRecord(trace_id="t"))
    assert len(late) == 2


def test_merge_keeps_earliest_start_and_later_fields() -> None:
    t0, t1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    start = TrajectoryRecord(trace_id="t", user_id="u", started_at=t1, metadata={"a": 1})
    end = TrajectoryRecord(
        trace_id="t", status=TrajectoryStatus.SUCCESS, started_at=t0, ended_at=t1, metadata={"b": 2}
    )
    merged = TrajectoryRecord.model_validate(merge_json(start.model_dump(mode="json"), end)[0])
    assert merged.user_id == "u"
    assert merged.status is TrajectoryStatus.SUCCESS
    assert merged.started_at == t0 and merged.ended_at == t1
    assert merged.metadata == {"a": 1, "b": 2}


def test_an_early_event_held_for_the_grace_period_goes_out_once_joined() -> None:
    j = joiner(grace_s=10)
    early = ActionEvent(event_id="e", name="x", trace_id="t")
    assert join(j, early, partition=1, now=100.0) is None and j.held == 1
    assert sweep(j, 105.0) == []  # still within the grace period
    _, late = apply(j, TrajectoryRecord(trace_id="t", user_id="u"), 1, 106.0)
    assert [(e.event, e.version, e.joined) for e in late] == [(early, VERSION_JOINED, True)]
    assert sweep(j, 1_000.0) == []  # released: nothing left to send


def test_after_the_grace_period_it_goes_out_unjoined_and_later_rejoins() -> None:
    j = joiner(grace_s=10)
    early = TelemetryEvent(event_id="e", event_type="user.accept", trace_id="t")
    assert join(j, early, partition=0, now=100.0) is None
    out = sweep(j, 110.0)
    assert [(e.event, e.version, e.joined) for e in out] == [(early, VERSION_UNJOINED, False)]
    assert sweep(j, 200.0) == []  # sent once
    _, late = apply(j, TrajectoryRecord(trace_id="t"), 0, 300.0)
    assert [(e.version, e.joined) for e in late] == [(VERSION_JOINED, True)]


def test_sweeps_touch_only_owned_partitions() -> None:
    j = joiner(grace_s=1)
    join(j, ActionEvent(event_id="a", name="x", trace_id="t1"), partition=0, now=0.0)
    join(j, ActionEvent(event_id="b", name="x", trace_id="t2"), partition=1, now=0.0)
    assert [e.event.event_id for e in sweep(j, 5.0, partitions={1})] == ["b"]
    # partition 0 is another worker's; when it is assigned back, recovery schedules it again
    assert sweep(j, 6.0, partitions={0}) == []
    assert j.recover() == 2
    assert [e.event.event_id for e in sweep(j, 7.0, partitions={0})] == ["a"]


def test_idle_trajectories_are_closed_once_and_forgotten_past_the_retention() -> None:
    j = joiner(idle_timeout_s=60, retention_s=600)
    apply(j, TrajectoryRecord(trace_id="run", user_id="u"), 2, 1_000.0)
    apply(j, TrajectoryRecord(trace_id="done", status=TrajectoryStatus.SUCCESS), 2, 1_000.0)
    assert j.sweep_idle(1_030.0) == []
    closed = j.sweep_idle(1_061.0)
    assert [(s.trajectory.trace_id, s.trajectory.status) for s in closed] == [
        ("run", TrajectoryStatus.TIMED_OUT)
    ]
    assert closed[0].version == 2 and closed[0].trajectory.ended_at is not None
    assert j.forgotten == 2 and j.sweep_idle(1_500.0) == []  # closed once
    # kept closed for the retention: as ClickHouse last received it
    kept = j.trajectory_for("default", "run")
    assert kept is not None and kept.status is TrajectoryStatus.TIMED_OUT and kept.user_id == "u"
    assert j.sweep_idle(1_661.0) == [] and j.expired == 2
    assert j.trajectory_for("default", "run") is None
    # past the retention, a later event for the trace is early again
    out = join(j, ActionEvent(event_id="e", name="x", trace_id="run"))
    assert out is not None and not out.joined


def test_events_without_a_trace_are_counted() -> None:
    j = joiner(grace_s=10)
    out = join(j, ActionEvent(event_id="e", name="x"))
    assert out is not None and not out.joined and j.no_trace == 1


def test_a_hot_trace_parks_one_small_changelog_record_per_event() -> None:
    store, changelog = Store(), _Changelog()
    parked = WriteBack(store, changelog)  # type: ignore[arg-type]
    j = TrajectoryJoiner({}, parked, grace_s=0)
    for i in range(5_000):  # the list this replaces passed 1 MB at ~3,000 events
        out = join(j, ActionEvent(event_id=f"e{i}", name="x", trace_id="hot"), 2, float(i))
        assert out is not None and not out.joined
    parked.flush()
    assert len(changelog.sent) == 5_001  # one per event, and the trace's index once, last
    assert changelog.sent[-1][0] == trace_key("default", "hot")
    assert max(size for _, size in changelog.sent) < 1_000
    changelog.sent.clear()
    _, late = apply(j, TrajectoryRecord(trace_id="hot", user_id="u"), 2, 9_000.0)
    assert [e.event.event_id for e in late] == [f"e{i}" for i in range(5_000)]
    assert all(e.joined and e.version == VERSION_JOINED for e in late)
    assert j.late_joined == 5_000 and j.pending_overflow == 0
    parked.flush()
    assert len(changelog.sent) == 5_001 and {size for _, size in changelog.sent} == {0}
    assert store == {}


def test_held_events_count_as_joined_and_sent_ones_as_late_joined() -> None:
    j = joiner(grace_s=10)
    join(j, ActionEvent(event_id="sent", name="x", trace_id="t"), 0, 0.0)
    assert [e.event.event_id for e in sweep(j, 10.0)] == ["sent"]
    join(j, ActionEvent(event_id="held", name="x", trace_id="t"), 0, 11.0)
    _, late = apply(j, TrajectoryRecord(trace_id="t"), 0, 12.0)
    assert [e.event.event_id for e in late] == ["sent", "held"]
    assert (j.joined, j.late_joined, j.unjoined, j.grace_expired) == (1, 1, 1, 1)


def test_parked_events_survive_a_restart() -> None:
    trajectories: dict[str, Any] = {}
    pending: dict[str, Any] = {}
    before = TrajectoryJoiner(trajectories, pending, grace_s=10)
    for i in range(3):
        join(before, ActionEvent(event_id=f"e{i}", name="x", trace_id="t"), 3, 100.0 + i)
    # a new worker over the recovered tables
    after = TrajectoryJoiner(trajectories, pending, grace_s=10)
    assert after.recover() == 1
    assert sweep(after, 105.0) == []
    assert [e.event.event_id for e in sweep(after, 111.0, partitions={3})] == ["e0", "e1"]
    again = TrajectoryJoiner(trajectories, pending, grace_s=10)  # and once more
    assert again.recover() == 1
    _, late = apply(again, TrajectoryRecord(trace_id="t"), 3, 111.5)
    assert [e.event.event_id for e in late] == ["e0", "e1", "e2"]
    assert (again.late_joined, again.joined) == (2, 1) and pending == {}
    assert sweep(again, 200.0) == []


def test_an_event_too_large_for_one_kafka_message_is_not_parked() -> None:
    """The validator admits records up to 1,000,000 bytes; parked, such an event would not
    fit one changelog message, so it goes out unjoined at once instead."""
    properties = {"blob": "x" * (DEFAULT_MAX_RECORD_BYTES - 200)}
    raw = json.dumps(
        {"type": "action", "event_id": "big", "name": "x", "trace_id": "t",
         "timestamp": "2026-01-01T00:00:00Z", "properties": properties}
    ).encode()
    assert len(raw) <= DEFAULT_MAX_RECORD_BYTES
    event = validate(raw, topic="actions", partition=0, offset=0,
                     now=datetime(2026, 1, 1, tzinfo=UTC))
    assert isinstance(event, ActionEvent | FastActionEvent)
    pending: dict[str, Any] = {}
    j = TrajectoryJoiner({}, pending, grace_s=10)
    out = join(j, event)
    assert out is not None and not out.joined and out.version == VERSION_UNJOINED
    assert j.pending_overflow == 1 and j.held == 0 and pending == {}


def test_idle_sweep_forgets_parked_events_that_went_out() -> None:
    pending: dict[str, Any] = {}
    j = TrajectoryJoiner({}, pending, grace_s=0, idle_timeout_s=60)
    for i in range(3):
        join(j, ActionEvent(event_id=f"e{i}", name="x", trace_id="t"), 0, 100.0 + i)
    assert j.sweep_idle(150.0) == [] and len(pending) == 4
    j.sweep_idle(200.0)
    assert pending == {}
    _, late = apply(j, TrajectoryRecord(trace_id="t"), 0, 201.0)
    assert late == []


class _Writes(dict[str, Any]):
    """A pending table that records every write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def __setitem__(self, key: str, value: Any) -> None:
        self.writes += 1
        super().__setitem__(key, value)


def _early(i: int) -> ActionEvent:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return ActionEvent(event_id=f"e{i}", name="x", trace_id="t", timestamp=at)


def test_an_early_event_whose_trajectory_comes_later_in_the_batch_is_never_parked() -> None:
    pending = _Writes()
    j = TrajectoryJoiner({}, pending, grace_s=10)
    j.open_batch()
    assert j.join_encoded(_early(0), 0, 1.0, b'{"as":"received"}') is None
    applied = j.apply_trajectory_encoded(TrajectoryRecord(trace_id="t"), 0, 1.0)
    assert applied.late == [(_early(0), b'{"as":"received"}')]
    assert j.close_batch() == []
    assert pending.writes == 0 and (j.joined, j.held) == (1, 0)


def test_staged_events_left_at_the_end_of_the_batch_are_parked_in_arrival_order() -> None:
    pending = _Writes()
    j = TrajectoryJoiner({}, pending, grace_s=10)
    j.join_encoded(_early(0), 0, 1.0, b"0")  # no batch open: parked at once
    j.open_batch()
    j.join_encoded(_early(1), 0, 2.0, b"1")
    j.join_encoded(_early(2), 0, 2.0, b"2")
    assert j.close_batch() == [] and j.held == 3
    assert len(pending) == 4  # three event records and the index
    j.open_batch()
    j.join_encoded(_early(3), 0, 3.0, b"3")
    applied = j.apply_trajectory_encoded(TrajectoryRecord(trace_id="t"), 0, 3.0)
    assert [json for _, json in applied.late] == [b"0", b"1", b"2", b"3"]
    assert j.close_batch() == [] and pending == {} and j.joined == 4


def test_staged_events_over_the_per_trace_cap_come_back_to_go_out_unjoined() -> None:
    j = TrajectoryJoiner({}, {}, grace_s=10, max_pending_per_trace=1)
    j.open_batch()
    j.join_encoded(_early(0), 0, 1.0, b"0")
    j.join_encoded(_early(1), 0, 1.0, b"1")
    assert j.close_batch() == [(_early(1), b"1")]
    assert (j.held, j.unjoined, j.pending_overflow) == (1, 1, 1)


def test_an_abandoned_batch_leaves_nothing_staged() -> None:
    j = TrajectoryJoiner({}, {}, grace_s=10)
    j.open_batch()
    j.join_encoded(_early(0), 0, 1.0, b"0")
    j.abandon_batch()
    assert j.apply_trajectory_encoded(TrajectoryRecord(trace_id="t"), 0, 2.0).late == []


def _reference_merge(old: TrajectoryRecord | None, new: TrajectoryRecord) -> TrajectoryRecord:
    """The merge on models as the processor ran it before it merged JSON forms."""
    if old is None:
        return new
    updates = {k: v for k in new.model_fields_set if (v := getattr(new, k)) is not None}
    starts = [s for s in (old.started_at, new.started_at) if s is not None]
    updates["started_at"] = min(starts) if starts else None
    updates["metadata"] = {**old.metadata, **new.metadata}
    return old.model_copy(update=updates)


def _random_trajectory(rng: Any) -> bytes:
    record: dict[str, Any] = {"type": "trajectory", "trace_id": rng.choice(["t1", "t2"]),
                              "timestamp": f"2026-01-0{rng.randint(1, 9)}T00:00:00Z"}  # fmt: skip
    for name in ("trajectory_id", "user_id", "anonymous_id", "agent_id"):
        if rng.random() < 0.4:
            record[name] = rng.choice([None, f"{name}-{rng.randint(0, 2)}"])
    if rng.random() < 0.5:
        record["status"] = rng.choice(["running", "success", "error", "cancelled"])
    for name in ("started_at", "ended_at"):
        if rng.random() < 0.5:
            record[name] = rng.choice([
                None, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00.5Z",
                "2026-01-01T01:00:00+02:00", "2025-12-31T23:00:00", "2026-01-02T00:00:00.000001Z",
            ])  # fmt: skip
    if rng.random() < 0.5:
        record["metadata"] = {rng.choice("abc"): rng.choice([1, 1.5, "x", None, [1], {"d": 2}])}
    if rng.random() < 0.2:
        record["project"] = "default"
    if rng.random() < 0.2:
        record["schema_version"] = 1
    if rng.random() < 0.1:  # a lax form only pydantic reads: the fallback path
        record["timestamp"] = 1767225600 + rng.randint(0, 9)
    return json.dumps(record).encode()


def test_merging_json_forms_equals_merging_models_on_both_decoding_paths() -> None:
    import random

    rng = random.Random(20261128)
    for _ in range(300):
        lines = [_random_trajectory(rng) for _ in range(rng.randint(1, 6))]
        j = joiner()
        reference: dict[str, TrajectoryRecord] = {}
        for line in lines:
            record = validate(line, topic="t", partition=0, offset=0)
            assert not isinstance(record, ActionEvent | TelemetryEvent | FastActionEvent)
            model = TrajectoryRecord.model_validate_json(line)
            expected = reference[model.trace_id] = _reference_merge(
                reference.get(model.trace_id), model
            )
            applied = j.apply_trajectory_encoded(record)
            want = expected.model_dump(mode="json")
            assert applied.trajectory == want, lines
            assert orjson.loads(applied.trajectory_json) == want, lines
            assert applied.state.trajectory == expected
            assert j.trajectory_for("default", model.trace_id) == expected
            # the table holds the JSON form: a restarted worker reads the same trajectory
            stored = j._trajectories[trace_key("default", model.trace_id)]
            assert stored["trajectory"] == want

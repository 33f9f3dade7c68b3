from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from schemas import (
    VERSION_JOINED,
    VERSION_UNJOINED,
    ActionEvent,
    TelemetryEvent,
    TrajectoryRecord,
    TrajectoryStatus,
)
from stream_processors.steps.join import TrajectoryJoiner, merge


def joiner(**kw: Any) -> TrajectoryJoiner:
    return TrajectoryJoiner({}, {}, **kw)


def test_event_after_its_trajectory_is_joined() -> None:
    j = joiner()
    j.apply_trajectory(TrajectoryRecord(trace_id="t", user_id="u", agent_id="a"))
    out = j.join(ActionEvent(event_id="e", name="x", trace_id="t"))
    assert out is not None and out.joined and out.version == VERSION_JOINED
    assert out.trajectory is not None and out.trajectory.user_id == "u"


def test_early_event_goes_out_unjoined_then_rejoins_with_a_higher_version() -> None:
    j = joiner()
    early = TelemetryEvent(event_id="e", event_type="user.accept", trace_id="t")
    first = j.join(early)
    assert first is not None and not first.joined and first.version == VERSION_UNJOINED
    state, late = j.apply_trajectory(TrajectoryRecord(trace_id="t", user_id="u"))
    assert [e.event for e in late] == [early]
    assert late[0].version > first.version and late[0].joined
    assert state.version == 1
    _, again = j.apply_trajectory(TrajectoryRecord(trace_id="t", status=TrajectoryStatus.SUCCESS))
    assert again == []  # released once


def test_events_without_trace_pass_through_unjoined() -> None:
    j = joiner()
    out = j.join(ActionEvent(event_id="e", name="x"))
    assert out is not None and not out.joined and j.unjoined == 1


def test_trajectories_are_scoped_by_project() -> None:
    j = joiner()
    j.apply_trajectory(TrajectoryRecord(project="a", trace_id="t"))
    out = j.join(ActionEvent(project="b", event_id="e", name="x", trace_id="t"))
    assert out is not None and not out.joined


def test_pending_is_bounded_per_trace_and_overflow_is_counted() -> None:
    j = joiner(max_pending_per_trace=2)
    for i in range(3):
        j.join(ActionEvent(event_id=f"e{i}", name="x", trace_id="t"))
    assert j.pending_overflow == 1
    _, late = j.apply_trajectory(TrajectoryRecord(trace_id="t"))
    assert len(late) == 2


def test_merge_keeps_earliest_start_and_later_fields() -> None:
    t0, t1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    start = TrajectoryRecord(trace_id="t", user_id="u", started_at=t1, metadata={"a": 1})
    end = TrajectoryRecord(
        trace_id="t", status=TrajectoryStatus.SUCCESS, started_at=t0, ended_at=t1, metadata={"b": 2}
    )
    merged = merge(start, end)
    assert merged.user_id == "u"
    assert merged.status is TrajectoryStatus.SUCCESS
    assert merged.started_at == t0 and merged.ended_at == t1
    assert merged.metadata == {"a": 1, "b": 2}


def test_an_early_event_held_for_the_grace_period_goes_out_once_joined() -> None:
    j = joiner(grace_s=10)
    early = ActionEvent(event_id="e", name="x", trace_id="t")
    assert j.join(early, partition=1, now=100.0) is None and j.held == 1
    assert j.sweep_pending(105.0) == []  # still within the grace period
    _, late = j.apply_trajectory(TrajectoryRecord(trace_id="t", user_id="u"), 1, 106.0)
    assert [(e.event, e.version, e.joined) for e in late] == [(early, VERSION_JOINED, True)]
    assert j.sweep_pending(1_000.0) == []  # released: nothing left to send


def test_after_the_grace_period_it_goes_out_unjoined_and_later_rejoins() -> None:
    j = joiner(grace_s=10)
    early = TelemetryEvent(event_id="e", event_type="user.accept", trace_id="t")
    assert j.join(early, partition=0, now=100.0) is None
    out = j.sweep_pending(110.0)
    assert [(e.event, e.version, e.joined) for e in out] == [(early, VERSION_UNJOINED, False)]
    assert j.sweep_pending(200.0) == []  # sent once
    _, late = j.apply_trajectory(TrajectoryRecord(trace_id="t"), 0, 300.0)
    assert [(e.version, e.joined) for e in late] == [(VERSION_JOINED, True)]


def test_sweeps_touch_only_owned_partitions() -> None:
    j = joiner(grace_s=1)
    j.join(ActionEvent(event_id="a", name="x", trace_id="t1"), partition=0, now=0.0)
    j.join(ActionEvent(event_id="b", name="x", trace_id="t2"), partition=1, now=0.0)
    assert [e.event.event_id for e in j.sweep_pending(5.0, partitions={1})] == ["b"]


def test_idle_trajectories_are_closed_once_and_forgotten() -> None:
    j = joiner(idle_timeout_s=60)
    j.apply_trajectory(TrajectoryRecord(trace_id="run", user_id="u"), 2, 1_000.0)
    j.apply_trajectory(
        TrajectoryRecord(trace_id="done", status=TrajectoryStatus.SUCCESS), 2, 1_000.0
    )
    assert j.sweep_idle(1_030.0) == []
    closed = j.sweep_idle(1_061.0)
    assert [(s.trajectory.trace_id, s.trajectory.status) for s in closed] == [
        ("run", TrajectoryStatus.TIMED_OUT)
    ]
    assert closed[0].version == 2 and closed[0].trajectory.ended_at is not None
    assert j.trajectory_for("default", "run") is None and j.forgotten == 2
    assert j.sweep_idle(5_000.0) == []
    # a later event for a forgotten trace is early again
    assert j.join(ActionEvent(event_id="e", name="x", trace_id="run")) is not None


def test_events_without_a_trace_are_counted() -> None:
    j = joiner(grace_s=10)
    out = j.join(ActionEvent(event_id="e", name="x"))
    assert out is not None and not out.joined and j.no_trace == 1

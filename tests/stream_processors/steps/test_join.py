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
    assert out.joined and out.version == VERSION_JOINED
    assert out.trajectory is not None and out.trajectory.user_id == "u"


def test_early_event_goes_out_unjoined_then_rejoins_with_a_higher_version() -> None:
    j = joiner()
    early = TelemetryEvent(event_id="e", event_type="user.accept", trace_id="t")
    first = j.join(early)
    assert not first.joined and first.version == VERSION_UNJOINED
    state, late = j.apply_trajectory(TrajectoryRecord(trace_id="t", user_id="u"))
    assert [e.event for e in late] == [early]
    assert late[0].version > first.version and late[0].joined
    assert state.version == 1
    _, again = j.apply_trajectory(TrajectoryRecord(trace_id="t", status=TrajectoryStatus.SUCCESS))
    assert again == []  # released once


def test_events_without_trace_pass_through_unjoined() -> None:
    j = joiner()
    out = j.join(ActionEvent(event_id="e", name="x"))
    assert not out.joined and j.unjoined == 1


def test_trajectories_are_scoped_by_project() -> None:
    j = joiner()
    j.apply_trajectory(TrajectoryRecord(project="a", trace_id="t"))
    assert not j.join(ActionEvent(project="b", event_id="e", name="x", trace_id="t")).joined


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

"""A trajectory resumed after its idle close (issue 21, item 2): what the join keeps of it
(``steps/closed.py``) and how a later event or record picks it up."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from meterline.schemas import VERSION_JOINED, ActionEvent, TrajectoryRecord, TrajectoryStatus
from meterline.stream_processors.state.writeback import WriteBack
from meterline.stream_processors.steps.closed import CLOSED_METADATA_MAX_BYTES
from meterline.stream_processors.steps.join import TrajectoryJoiner, trace_key
from tests.stream_processors.state.test_writeback import RecordingChangelog, Store
from tests.stream_processors.steps.fixtures import apply, join

STARTED = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ENDED = datetime(2026, 12, 1, 12, 0, 0, 250_000, tzinfo=UTC)


def closed_joiner(table: Any | None = None, **kw: Any) -> TrajectoryJoiner:
    """A joiner holding trace ``t`` (user u1, metadata, started) closed timed_out at 1,061."""
    j = TrajectoryJoiner({} if table is None else table, {}, idle_timeout_s=60, **kw)
    start = TrajectoryRecord(trace_id="t", user_id="u1", agent_id="a", started_at=STARTED,
                             metadata={"ticket": "T-1"})  # fmt: skip
    apply(j, start, 1, 1_000.0)
    (close,) = j.sweep_idle(1_061.0)
    assert close.version == 2 and close.trajectory.status is TrajectoryStatus.TIMED_OUT
    return j


def test_an_event_after_the_close_joins_with_the_trajectorys_user() -> None:
    j = closed_joiner()
    out = join(j, ActionEvent(event_id="e2", name="x", trace_id="t"), 1, 5_000.0)
    assert out is not None and out.joined and out.version == VERSION_JOINED
    assert out.trajectory is not None and out.trajectory.user_id == "u1"


def test_the_end_record_after_the_close_wins_with_the_real_status_and_end() -> None:
    j = closed_joiner()
    end = TrajectoryRecord(trace_id="t", status=TrajectoryStatus.SUCCESS, ended_at=ENDED)
    state, _ = apply(j, end, 1, 5_000.0)
    assert state.version == 3  # above the close's 2: ReplacingMergeTree keeps this one
    t = state.trajectory
    assert (t.status, t.ended_at, t.user_id, t.agent_id) == (
        TrajectoryStatus.SUCCESS, ENDED, "u1", "a"
    )  # fmt: skip
    assert t.started_at == STARTED and t.metadata == {"ticket": "T-1"}
    assert j.reopened == 1


def test_an_update_after_the_close_resumes_it_running_and_it_can_close_again() -> None:
    j = closed_joiner()
    state, _ = apply(j, TrajectoryRecord(trace_id="t", metadata={"k": 1}), 1, 5_000.0)
    # merged into the trajectory before the close, not into the synthetic timed_out one
    assert (state.version, state.trajectory.status, state.trajectory.ended_at) == (
        3, TrajectoryStatus.RUNNING, None
    )  # fmt: skip
    assert state.trajectory.metadata == {"ticket": "T-1", "k": 1}
    (again,) = j.sweep_idle(5_061.0)
    assert again.version == 4 and again.trajectory.status is TrajectoryStatus.TIMED_OUT


def test_a_late_record_of_an_ended_and_forgotten_trajectory_keeps_counting_versions() -> None:
    j = TrajectoryJoiner({}, {}, idle_timeout_s=60)
    apply(j, TrajectoryRecord(trace_id="t", user_id="u1"), 0, 1_000.0)
    end = TrajectoryRecord(trace_id="t", status=TrajectoryStatus.SUCCESS, ended_at=ENDED)
    apply(j, end, 0, 1_000.0)
    assert j.sweep_idle(1_061.0) == []  # ended: nothing to close, but remembered
    kept = j.trajectory_for("default", "t")
    assert kept is not None and kept.status is TrajectoryStatus.SUCCESS
    state, _ = apply(j, end, 0, 9_000.0)  # a retry days later
    assert state.version == 3 and state.trajectory.user_id == "u1"


def test_the_closed_record_survives_a_restart_through_the_changelog() -> None:
    store, changelog = Store(), RecordingChangelog()
    trajectories = WriteBack(store, changelog)  # type: ignore[arg-type]
    closed_joiner(trajectories)
    trajectories.flush()
    key = trace_key("default", "t")
    partition, _, value = [m for m in changelog.sent if m[1] == key][-1]
    assert partition == 1 and value["closed"] == 1_061.0 and value["version"] == 2
    # a new worker: the table as recovered from the (JSON) changelog, nothing in memory
    recovered = {k: json.loads(json.dumps(v)) for _, k, v in changelog.sent if v is not None}
    j = TrajectoryJoiner(recovered, {}, idle_timeout_s=60)
    j.recover()
    end = TrajectoryRecord(trace_id="t", status=TrajectoryStatus.SUCCESS, ended_at=ENDED)
    state, _ = apply(j, end, 1, 5_000.0)
    assert (state.version, state.trajectory.status, state.trajectory.user_id) == (
        3, TrajectoryStatus.SUCCESS, "u1"
    )  # fmt: skip


def test_large_metadata_is_not_kept_after_the_close() -> None:
    j = TrajectoryJoiner({}, {}, idle_timeout_s=60)
    big = {"blob": "x" * (CLOSED_METADATA_MAX_BYTES + 1)}
    apply(j, TrajectoryRecord(trace_id="t", user_id="u1", metadata=big), 0, 1_000.0)
    (close,) = j.sweep_idle(1_061.0)
    assert close.trajectory.metadata == big  # the close itself still carries it
    assert j.metadata_dropped == 1
    kept = j.trajectory_for("default", "t")
    assert kept is not None and kept.metadata == {} and kept.user_id == "u1"


def test_a_closed_record_of_another_workers_partition_is_left_alone() -> None:
    j = closed_joiner(retention_s=600)
    assert j.sweep_idle(9_999.0, partitions={0}) == [] and j.expired == 0
    assert j.trajectory_for("default", "t") is not None
    j.sweep_idle(9_999.0, partitions={1})
    assert j.expired == 1 and j.trajectory_for("default", "t") is None

"""Grace period and inactivity timeout of the join, on real Tansu + chDB."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from meterline.producers import MeterlineProducer
from meterline.schemas import ActionEvent, ActionKind, TrajectoryRecord, TrajectoryStatus
from tests.fixtures import wait_until
from tests.integration.test_faults import uncommitted

pytestmark = pytest.mark.integration


def _rows(pipeline: Any, sql: str) -> list[tuple[Any, ...]]:
    return list(pipeline.clickhouse.query(sql.format(db=pipeline.settings.database)).result_rows)


def test_orphans_go_out_unjoined_after_the_grace_period_then_rejoin(
    pipeline_factory: Any,
) -> None:
    pipeline = pipeline_factory(join_grace_s=2.0, join_sweep_interval_s=0.5)
    assert pipeline.settings.kafka_bootstrap
    producer = MeterlineProducer(pipeline.settings.kafka_bootstrap, topics=pipeline.settings.topics)
    for i in range(20):
        producer.send(ActionEvent(project="g", event_id=f"o{i}", name="x", trace_id="late",
                                  kind=ActionKind.TOOL_CALL))
    producer.send(ActionEvent(project="g", event_id="plain", name="x", kind=ActionKind.TOOL_CALL))
    assert producer.flush(30) == 0

    def unjoined() -> bool:
        return _rows(pipeline, "SELECT count(), sum(joined) FROM {db}.events FINAL") == [(21, 0)]

    assert wait_until(unjoined, 60, pipeline=pipeline), _rows(
        pipeline, "SELECT count(), sum(joined) FROM {db}.events FINAL"
    )
    producer.send(TrajectoryRecord(project="g", trace_id="late", user_id="u1"))
    assert producer.close() == 0

    def rejoined() -> bool:
        return _rows(
            pipeline, "SELECT count(), sum(joined), countIf(user_id = 'u1') FROM {db}.events FINAL"
        ) == [(21, 20, 20)]

    assert wait_until(rejoined, 60, pipeline=pipeline), _rows(
        pipeline, "SELECT count(), sum(joined) FROM {db}.events FINAL"
    )


def test_a_trajectory_that_never_ends_is_closed_by_the_inactivity_timeout(
    pipeline_factory: Any,
) -> None:
    pipeline = pipeline_factory(trajectory_idle_timeout_s=3.0, join_sweep_interval_s=0.5)
    assert pipeline.settings.kafka_bootstrap
    producer = MeterlineProducer(pipeline.settings.kafka_bootstrap, topics=pipeline.settings.topics)
    producer.send(TrajectoryRecord(project="i", trace_id="forever", user_id="u"))
    producer.send(TrajectoryRecord(project="i", trace_id="ended", status=TrajectoryStatus.SUCCESS))
    assert producer.close() == 0

    def closed() -> bool:
        return _rows(
            pipeline, "SELECT trace_id, status FROM {db}.trajectories FINAL ORDER BY trace_id"
        ) == [("ended", "success"), ("forever", "timed_out")]

    assert wait_until(closed, 60, pipeline=pipeline), _rows(
        pipeline, "SELECT trace_id, status, version FROM {db}.trajectories FINAL"
    )


@pytest.mark.parametrize("restart", [False, True], ids=["same-worker", "kill-9-in-the-pause"])
def test_a_trajectory_resumed_after_its_idle_close_ends_with_its_real_status(
    pipeline_factory: Any, restart: bool
) -> None:
    """A human-in-the-loop pause longer than the idle timeout: the trajectory is closed
    ``timed_out``, then resumes (an event, then the end record). The final row is the real
    end, with a version above the close's, and the event after the gap joins with the
    trajectory's user (issue 21, item 2). ``restart``: the worker is killed during the pause
    (its raw offsets committed) and the next one recovers the closed trajectory from the
    changelog."""
    pipeline = pipeline_factory(
        trajectory_idle_timeout_s=4.0, join_sweep_interval_s=0.5, join_grace_s=1.0
    )
    assert pipeline.settings.kafka_bootstrap
    producer = MeterlineProducer(pipeline.settings.kafka_bootstrap, topics=pipeline.settings.topics)
    producer.send(TrajectoryRecord(project="r", trace_id="hitl", user_id="u1"))
    producer.send(ActionEvent(project="r", event_id="e1", name="x", trace_id="hitl",
                              kind=ActionKind.TOOL_CALL))  # fmt: skip
    assert producer.flush(30) == 0

    def closed() -> bool:
        return _rows(
            pipeline, "SELECT status FROM {db}.trajectories FINAL WHERE trace_id = 'hitl'"
        ) == [("timed_out",)]

    assert wait_until(closed, 60, pipeline=pipeline), _rows(
        pipeline, "SELECT status, version FROM {db}.trajectories"
    )
    if restart:
        raw = pipeline.settings.topics.raw
        assert wait_until(
            lambda: uncommitted(pipeline, pipeline.settings.app_id, raw) == 0, 60,
            pipeline=pipeline,
        )  # fmt: skip
        pipeline.workers.pop().kill()  # SIGKILL: the next worker has only the changelog
        pipeline.add_worker()
    ended_at = datetime(2026, 12, 1, 12, 0, 0, 250_000, tzinfo=UTC)
    producer.send(ActionEvent(project="r", event_id="e2", name="x", trace_id="hitl",
                              kind=ActionKind.TOOL_CALL))  # fmt: skip
    producer.send(TrajectoryRecord(project="r", trace_id="hitl",
                                   status=TrajectoryStatus.SUCCESS, ended_at=ended_at))  # fmt: skip
    assert producer.close() == 0

    def ended() -> bool:
        return _rows(
            pipeline, "SELECT status FROM {db}.trajectories FINAL WHERE trace_id = 'hitl'"
        ) == [("success",)] and _rows(
            pipeline, "SELECT count() FROM {db}.events FINAL WHERE joined = 1"
        ) == [(2,)]

    assert wait_until(ended, 90 if restart else 30, pipeline=pipeline), (
        _rows(pipeline, "SELECT status, version, user_id FROM {db}.trajectories"),
        _rows(pipeline, "SELECT event_id, user_id, joined FROM {db}.events FINAL"),
    )
    ((status, final_ended, user, version),) = _rows(
        pipeline,
        "SELECT status, ended_at, user_id, version FROM {db}.trajectories FINAL",
    )
    assert (status, user) == ("success", "u1")
    assert final_ended is not None
    assert final_ended.replace(tzinfo=None) == ended_at.replace(tzinfo=None)
    rows = _rows(pipeline, "SELECT status, version FROM {db}.trajectories ORDER BY version")
    close_version = max(v for s, v in rows if s == "timed_out")
    assert version == max(v for _, v in rows) > close_version, rows
    assert _rows(
        pipeline, "SELECT event_id, user_id FROM {db}.events FINAL ORDER BY event_id"
    ) == [("e1", "u1"), ("e2", "u1")]

"""Grace period and inactivity timeout of the join, on real Tansu + chDB."""

from __future__ import annotations

from typing import Any

import pytest

from producers import MeterlineProducer
from schemas import ActionEvent, ActionKind, TrajectoryRecord, TrajectoryStatus
from tests.fixtures import wait_until

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

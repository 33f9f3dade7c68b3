"""Outcomes that hold at the edges of the rule stage (real Tansu + chDB): a late event after
the stage dropped its trajectory's state, and a backfill while the sink lags.

The right answer for a trajectory is what evaluating all its events gives -- what
``meterline backfill`` computes from ClickHouse once they have landed."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from meterline.billing.backfill import backfill_landed
from meterline.billing.watermark import NotLanded, Watermark
from meterline.producers import MeterlineProducer
from meterline.schemas import ActionEvent, EnrichedEvent, Status, Topics, TrajectoryRecord, utc_now
from meterline.schemas.events import TrajectoryStatus
from meterline.sinks import ClickHouseSink
from meterline.sinks.service import build_sink, clickhouse_writer
from meterline.stream_processors.control_plane import load_control_plane
from meterline.stream_processors.rules import evaluate_trajectory
from tests.fixtures import wait_until

pytestmark = pytest.mark.integration

RULES = """\
version: 1
outcome_rules:
  - id: task_completed
    name: Task completed
    steps:
      - action: task
    value: {path: properties.tasks}
  - id: big_task
    name: Big task
    steps:
      - action: task
        where:
          - {field: properties.tasks, op: gte, value: 50}
    value: {path: properties.tasks}
"""


def send(pipeline: Any, *records: Any) -> None:
    producer = MeterlineProducer(pipeline.settings.kafka_bootstrap, topics=pipeline.settings.topics)
    producer.send_many(list(records))
    assert producer.close() == 0


def task(project: str, trace: str, event_id: str, tasks: int, seconds: float) -> ActionEvent:
    return ActionEvent(
        project=project, event_id=event_id, trace_id=trace, name="task", status=Status.SUCCESS,
        properties={"tasks": tasks}, timestamp=utc_now() - timedelta(minutes=5, seconds=-seconds),
    )  # fmt: skip


def live(clickhouse: Any, db: str, project: str) -> dict[str, float]:
    rows = clickhouse.query(
        f"SELECT rule_id, value FROM {db}.outcomes FINAL WHERE retracted = 0 "
        "AND project = %(p)s",
        parameters={"p": project},
    ).result_rows
    return {r: float(v) for r, v in rows}


def test_a_late_event_after_the_rule_state_was_dropped_gives_the_whole_trajectory_answer(
    pipeline_factory: Any, tmp_path: Path
) -> None:
    config = tmp_path / "control-plane.yaml"
    config.write_text(RULES)
    grace = 2.0
    pipeline = pipeline_factory(
        control_plane=config, rule_end_grace_s=grace, recompute_interval_s=1.0
    )
    db, ch = pipeline.settings.database, pipeline.clickhouse
    project, trace = "late", f"tr-{uuid.uuid4().hex[:8]}"
    start = TrajectoryRecord(project=project, trace_id=trace, user_id="u1")
    e1 = task(project, trace, f"{trace}-e1", 3, 0)
    send(pipeline, start, e1)
    send(pipeline, start.model_copy(update={"status": TrajectoryStatus.SUCCESS}))
    assert wait_until(lambda: live(ch, db, project) == {"task_completed": 3.0}, 60,
                      pipeline=pipeline), live(ch, db, project)  # fmt: skip

    # past the end grace; another project's events make the stage drain and expire
    time.sleep(grace + 1)
    for i in range(2):
        send(pipeline, ActionEvent(project="other", event_id=f"o{i}-{trace}", name="noise"))
        time.sleep(1.5)
    e2 = task(project, trace, f"{trace}-e2", 99, 1)
    send(pipeline, e2)

    whole = evaluate_trajectory(
        load_control_plane(config),
        [EnrichedEvent(event=e, trajectory=start) for e in (e1, e2)],
    )
    want = {o.rule_id: o.value for o in whole}
    assert want == {"task_completed": 3.0, "big_task": 99.0}
    assert wait_until(lambda: live(ch, db, project) == want, 60, pipeline=pipeline), (
        live(ch, db, project), want,
    )  # fmt: skip
    pending = f"SELECT count() FROM {db}.outcome_corrections FINAL WHERE resolved = 0"
    assert wait_until(lambda: ch.query(pending).result_rows[0][0] == 0, 30, pipeline=pipeline)
    assert ch.query(f"SELECT count() FROM {db}.outcome_corrections").result_rows[0][0] >= 1
    time.sleep(3)  # nothing later replaces it
    assert live(ch, db, project) == want


@dataclass(frozen=True)
class NoEvents(Topics):
    """A sink that reads everything but the enriched events: one lagging on them."""

    @property
    def sink_inputs(self) -> tuple[str, ...]:
        return (self.trajectory_state, self.outcomes)


def run_sink(sink: ClickHouseSink) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=sink.run, args=(stop,), daemon=True)
    thread.start()
    return stop, thread


def test_a_backfill_while_the_sink_lags_refuses_and_never_retracts_live_outcomes(
    pipeline_factory: Any, clickhouse: Any, tmp_path: Path
) -> None:
    config = tmp_path / "control-plane.yaml"
    config.write_text(RULES)
    pipeline = pipeline_factory(control_plane=config, sink=False)
    settings = pipeline.settings
    writer = clickhouse_writer(settings.sink_config(), clickhouse)
    db, project, trace = settings.database, "lag", f"tr-{uuid.uuid4().hex[:8]}"
    rules = load_control_plane(config)
    day = (utc_now() - timedelta(minutes=5)).date()  # the events' day
    events = f"SELECT count() FROM {db}.events FINAL WHERE project = %(p)s"

    def count() -> int:
        return int(clickhouse.query(events, parameters={"p": project}).result_rows[0][0])

    full = build_sink(settings.sink_config(), writer)
    stop, thread = run_sink(full)
    start = TrajectoryRecord(project=project, trace_id=trace, user_id="u1")
    plan = ActionEvent(project=project, event_id=f"{trace}-plan", trace_id=trace, name="plan")
    send(pipeline, start, plan)
    assert wait_until(lambda: count() == 1, 60, pipeline=pipeline)
    stop.set()
    thread.join(30)

    # the sink now lands outcomes but lags on events: the outcome of e1 is live, e1 is not
    lagging = ClickHouseSink(
        settings.kafka_bootstrap or "", NoEvents(settings.topic_prefix), writer,
        group_id=settings.sink_group,
    )  # fmt: skip
    stop, thread = run_sink(lagging)
    send(pipeline, task(project, trace, f"{trace}-e1", 3, 0))
    assert wait_until(lambda: live(clickhouse, db, project) == {"task_completed": 3.0}, 60,
                      pipeline=pipeline)  # fmt: skip
    assert count() == 1

    watermark = Watermark.from_settings(settings)
    with pytest.raises(NotLanded, match="not every event has landed"):
        backfill_landed(writer, rules, day, day, project, watermark, wait_s=2)
    assert live(clickhouse, db, project) == {"task_completed": 3.0}  # nothing retracted
    stop.set()
    thread.join(30)

    # once the events have landed the backfill runs and agrees with the stream
    stop, thread = run_sink(build_sink(settings.sink_config(), writer))
    try:
        done = backfill_landed(writer, rules, day, day, project, watermark, wait_s=60)
        assert (done.outcomes, done.retracted) == (1, 0)
        assert count() == 2
        assert live(clickhouse, db, project) == {"task_completed": 3.0}
    finally:
        stop.set()
        thread.join(30)

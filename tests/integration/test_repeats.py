"""Repeats of an event with another timestamp (real Tansu + chDB, issue 21 item 1): a retry
across midnight and a re-run days later, within the dedupe window, are one event in every
table and billing view, and the first admitted copy is the one kept."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from meterline.producers import MeterlineProducer
from meterline.schemas import ActionEvent, ActionKind, TrajectoryRecord
from tests.fixtures import wait_until

pytestmark = pytest.mark.integration

PROJECT = "repeats"
TRACE = "tr-repeats"
EVENT_ID = "call-0001"  # e.g. an idempotency key: the same on every attempt

RULES = """\
version: 1
outcome_rules:
  - id: answered
    name: Answered
    repeat: true
    steps:
      - kind: llm_call
"""

STORED = """SELECT timestamp, cost_usd, input_tokens FROM {db}.events FINAL
            WHERE project = %(p)s AND kind = 'llm_call' AND joined = 1"""
OUTCOMES = """SELECT rule_id, event_ids, value, timestamp FROM {db}.outcomes FINAL
              WHERE project = %(p)s AND retracted = 0"""


def utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC)


def llm_call(at: datetime, cost_usd: float, input_tokens: int) -> ActionEvent:
    return ActionEvent(
        project=PROJECT, event_id=EVENT_ID, trace_id=TRACE, kind=ActionKind.LLM_CALL,
        name="answer", model="gpt-4o", input_tokens=input_tokens, output_tokens=10,
        cost_usd=cost_usd, timestamp=at,
    )  # fmt: skip


def rows(pipeline: Any, sql: str) -> list[tuple[Any, ...]]:
    db = pipeline.settings.database
    result = pipeline.clickhouse.query(sql.format(db=db), parameters={"p": PROJECT})
    return [tuple(r) for r in result.result_rows]


def test_a_repeat_dated_the_next_day_or_days_later_is_one_event_everywhere(
    pipeline_factory: Any, tmp_path: Path
) -> None:
    config = tmp_path / "control-plane.yaml"
    config.write_text(RULES)
    pipeline = pipeline_factory(control_plane=config)
    # a day well inside the 7-day window and the validator's bounds (no later than now)
    day0 = datetime.combine(datetime.now(UTC).date() - timedelta(days=6), time(), UTC)
    first = llm_call(day0 + timedelta(hours=23, minutes=59, seconds=59.9), 0.05, 100)
    retry = llm_call(day0 + timedelta(days=1, seconds=0.1), 0.07, 140)  # 00:00:00.100Z
    rerun = llm_call(day0 + timedelta(days=4, hours=9), 0.09, 180)  # a re-run days later
    assert pipeline.settings.kafka_bootstrap
    producer = MeterlineProducer(pipeline.settings.kafka_bootstrap, topics=pipeline.settings.topics)
    producer.send_many([TrajectoryRecord(project=PROJECT, trace_id=TRACE, user_id="u1"), first])
    assert producer.flush(30) == 0

    def stored() -> list[tuple[Any, ...]]:
        return [(utc(at), *rest) for at, *rest in rows(pipeline, STORED)]

    assert wait_until(lambda: len(stored()) == 1, 60, pipeline=pipeline), stored()
    # the repeats, then a marker: same topic and key, so processed after them
    marker = ActionEvent(
        project=PROJECT, event_id="marker", trace_id=TRACE, name="marker",
        timestamp=day0 + timedelta(days=5),
    )  # fmt: skip
    producer.send_many([retry, rerun, marker])
    assert producer.close() == 0 and producer.stats.failed == 0
    landed = "SELECT count() FROM {db}.events FINAL WHERE project = %(p)s AND event_id = 'marker'"
    assert wait_until(lambda: rows(pipeline, landed) == [(1,)], 60, pipeline=pipeline)

    # events FINAL: one row, the first admitted copy (its timestamp, cost and tokens)
    assert stored() == [(first.timestamp, 0.05, 100)]
    # ... and no copy of a repeat waiting for a merge: the sink never received one
    every_copy = (
        "SELECT uniqExact(timestamp) FROM {db}.events WHERE project = %(p)s AND kind = 'llm_call'"
    )
    assert rows(pipeline, every_copy) == [(1,)]
    # usage_daily: one event, on the first copy's day, its cost once
    assert rows(
        pipeline,
        "SELECT day, events, input_tokens, toFloat64(cost_usd) FROM {db}.usage_daily "
        "WHERE project = %(p)s AND kind = 'llm_call'",
    ) == [(first.timestamp.date(), 1, 100, 0.05)]
    # event_counts: one llm_call
    assert rows(
        pipeline,
        "SELECT day, events FROM {db}.event_counts WHERE project = %(p)s AND kind = 'llm_call'",
    ) == [(first.timestamp.date(), 1)]
    # usage_by_user_monthly: one call and its cost once, summed over the months the copies span
    assert rows(
        pipeline,
        "SELECT user, sum(llm_calls), sum(input_tokens), sum(llm_cost_usd), sum(cost_usd) "
        "FROM {db}.usage_by_user_monthly WHERE project = %(p)s GROUP BY user",
    ) == [("u1", 1, 100, 0.05, 0.05)]

    # outcomes: one live outcome, from the one event
    def outcomes() -> list[tuple[Any, ...]]:
        return [(*rest, utc(at)) for *rest, at in rows(pipeline, OUTCOMES)]

    want = [("answered", [EVENT_ID], 1.0, first.timestamp)]
    assert wait_until(lambda: outcomes() == want, 20, pipeline=pipeline), outcomes()

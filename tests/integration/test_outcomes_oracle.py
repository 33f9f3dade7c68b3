"""Outcomes and seats in ClickHouse equal an independent oracle computed from the raw events.

Raw demo traffic goes through the real pipeline (Tansu -> Faust -> sink -> chDB); then
``backfill`` recomputes outcomes and seats from ClickHouse with the example control plane.
The oracle below is plain Python over the records that were sent, written from the rules'
English descriptions, not from the engine.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from meterline.billing.backfill import backfill
from meterline.demo.report import counts
from meterline.demo.traffic import Traffic, generate
from meterline.producers import MeterlineProducer
from meterline.schemas import (
    ActionEvent,
    ActionKind,
    EnrichedEvent,
    Event,
    Status,
    TelemetryEvent,
    encode,
)
from meterline.stream_processors.rules.stage import RuleStage
from tests.fixtures import wait_until
from tests.stream_processors.rules.fixtures import example

pytestmark = pytest.mark.integration

PROJECT = "oracle"
Row = tuple[str, str, float]  # (trace_id or user, user, value)


def _ok(e: Event, name: str) -> bool:
    return isinstance(e, ActionEvent) and e.name == name and e.status is Status.SUCCESS


def oracle_outcomes(traffic: Traffic) -> dict[str, Counter[Row]]:
    by_trace: dict[str, list[Event]] = defaultdict(list)
    for e in traffic.unique_events.values():
        assert e.trace_id is not None
        by_trace[e.trace_id].append(e)
    want: dict[str, Counter[Row]] = defaultdict(Counter)
    for trace, events in by_trace.items():
        user = traffic.trajectories[trace].user_id or ""
        events.sort(key=lambda e: (e.timestamp, e.event_id))
        # invoice processed: object_detection and data_extraction both succeeded
        if any(_ok(e, "object_detection") for e in events) and any(
            _ok(e, "data_extraction") for e in events
        ):
            want["invoice_processed"][(trace, user, 1.0)] += 1
        # customer query resolved: a successful LLM call, later a user.accept
        llm_at = [
            i for i, e in enumerate(events)
            if isinstance(e, ActionEvent) and e.kind is ActionKind.LLM_CALL
            and e.status is Status.SUCCESS
        ]  # fmt: skip
        accept_at = [
            i for i, e in enumerate(events)
            if isinstance(e, TelemetryEvent) and e.event_type == "user.accept"
        ]  # fmt: skip
        if llm_at and any(i > llm_at[0] for i in accept_at):
            want["customer_query_resolved"][(trace, user, 1.0)] += 1
        # task completed: the final workflow step succeeded; value = its tasks
        finals = [e for e in events if _ok(e, "workflow_step") and e.properties["final"] is True]
        if finals:
            want["task_completed"][(trace, user, float(finals[0].properties["tasks"]))] += 1
        # large invoice: each successful extraction of >= 1000 EUR/USD, valued at the amount
        for e in events:
            p = e.properties
            if (
                _ok(e, "data_extraction")
                and p["amount"] >= 1000
                and p["currency"] in ("EUR", "USD")
            ):
                want["large_invoice"][(trace, user, float(p["amount"]))] += 1
    # engaged user: every 3 LLM calls of a user within a day (the traffic spans < 1 day)
    llm_calls = Counter(
        e.user_id for e in traffic.unique_events.values()
        if isinstance(e, ActionEvent) and e.kind is ActionKind.LLM_CALL
    )  # fmt: skip
    for user, n in llm_calls.items():
        assert user is not None
        if n // 3:
            want["engaged_user"][(user, user, 1.0)] += n // 3
    return want


def oracle_seats(traffic: Traffic) -> dict[str, list[str]]:
    """November 2026: every user with an event is active (the traffic is all in November);
    assigned: the latest identify says admin/analyst or finance."""
    active = sorted({e.user_id for e in traffic.unique_events.values() if e.user_id})
    latest: dict[str, tuple[Any, dict[str, Any]]] = {}
    for e in traffic.unique_events.values():
        if not (isinstance(e, TelemetryEvent) and e.event_type == "identify" and e.user_id):
            continue
        if e.user_id not in latest or latest[e.user_id][0] < e.timestamp:
            latest[e.user_id] = (e.timestamp, e.properties)
    assigned = sorted(
        u for u, (_, a) in latest.items()
        if a["role"] in ("admin", "analyst") or a["department"] == "finance"
    )  # fmt: skip
    return {"active_30d": active, "assigned_role_or_department": assigned}


def test_backfilled_outcomes_and_seats_equal_the_oracle_and_the_stream_stage(
    pipeline_factory: Any,
) -> None:
    pipeline = pipeline_factory()
    traffic = generate(project=PROJECT, events=2_500, users=10, duplicate_rate=0.05, seed=23)
    stamps = [e.timestamp for e in traffic.unique_events.values()]
    assert max(stamps) - min(stamps) < timedelta(hours=20)
    assert pipeline.settings.kafka_bootstrap
    producer = MeterlineProducer(pipeline.settings.kafka_bootstrap, topics=pipeline.settings.topics)
    producer.send_many(traffic.records)
    assert producer.close() == 0
    ch, db = pipeline.clickhouse, pipeline.settings.database
    want_events = len(traffic.unique_events)

    def landed() -> bool:
        c = counts(ch, db, PROJECT)
        return c.events == want_events and c.joined == want_events

    assert wait_until(landed, 120, pipeline=pipeline), counts(ch, db, PROJECT)

    config = example()
    result = backfill(pipeline.writer, config, date(2026, 11, 1), date(2026, 11, 1), PROJECT)
    rows = ch.query(
        f"SELECT rule_id, trace_id, if(user_id != '', user_id, anonymous_id), value, outcome_id "
        f"FROM {db}.outcomes FINAL WHERE retracted = 0 AND project = %(p)s",
        parameters={"p": PROJECT},
    ).result_rows
    got: dict[str, Counter[Row]] = defaultdict(Counter)
    for rule, trace, user, value, _ in rows:
        key = user if rule == "engaged_user" else trace
        got[rule][(key, user, float(value))] += 1
    want = oracle_outcomes(traffic)
    assert set(want) == {r.id for r in config.outcome_rules}, "traffic should hit every rule"
    assert dict(got) == dict(want)
    assert result.outcomes == len(rows) and result.retracted == 0

    # the stream's rule stage, fed the same events, produces the same ids and values
    stage = RuleStage(config, {})
    for record in traffic.records:
        if isinstance(record, ActionEvent | TelemetryEvent):
            assert record.trace_id
            stage.observe(
                EnrichedEvent(event=record, trajectory=traffic.trajectories[record.trace_id])
            )
    streamed = {o.outcome_id: o.value for o in stage.drain()}
    backfilled = {oid: v for rule, _, _, v, oid in rows if rule != "engaged_user"}
    assert streamed == backfilled

    seats = dict(
        ch.query(
            f"SELECT rule_id, users FROM {db}.seats WHERE project = %(p)s "
            "AND period_start = '2026-11-01'",
            parameters={"p": PROJECT},
        ).result_rows
    )
    assert {k: sorted(v) for k, v in seats.items()} == oracle_seats(traffic)

    # running it again changes nothing (same ids, nothing retracted)
    again = backfill(pipeline.writer, config, date(2026, 11, 1), date(2026, 11, 1), PROJECT)
    assert (again.outcomes, again.retracted) == (result.outcomes, 0)
    n = ch.query(
        f"SELECT count() FROM {db}.outcomes FINAL WHERE retracted = 0 AND project = %(p)s",
        parameters={"p": PROJECT},
    ).result_rows[0][0]
    assert n == len(rows)


def test_outcome_records_on_the_outcomes_topic_land_in_clickhouse(pipeline_factory: Any) -> None:
    """What the rule stage will emit: the sink writes it, later computed_at wins."""
    pipeline = pipeline_factory()
    assert pipeline.settings.kafka_bootstrap
    producer = MeterlineProducer(pipeline.settings.kafka_bootstrap, topics=pipeline.settings.topics)
    stage = RuleStage(example(), {})
    for event in EVENTS:
        stage.observe(event)
    first = stage.drain()
    stage.observe(
        ActionEvent(project=PROJECT, event_id="x2", trace_id="tr", name="data_extraction",
                    properties={"amount": 5000, "currency": "EUR"}, timestamp=T0)
    )  # fmt: skip
    second = stage.drain()
    assert len(first) == 1 and len(second) == 1  # invoice, then a large invoice
    for o in first + second + first:  # a replay of the first batch changes nothing
        producer.send_bytes(pipeline.settings.topics.outcomes, o.outcome_id.encode(), encode(o))
    assert producer.close() == 0
    ch, db = pipeline.clickhouse, pipeline.settings.database

    def landed() -> list[tuple[Any, ...]]:
        return [
            tuple(r)
            for r in ch.query(
                f"SELECT rule_id, value FROM {db}.outcomes FINAL WHERE retracted = 0 "
                "ORDER BY rule_id"
            ).result_rows
        ]

    assert wait_until(lambda: len(landed()) == 2, 60, pipeline=pipeline), landed()
    assert landed() == [("invoice_processed", 1.0), ("large_invoice", 5000.0)]


T0 = datetime(2026, 11, 2, tzinfo=UTC)
EVENTS = [
    ActionEvent(project=PROJECT, event_id="d", trace_id="tr", name="object_detection",
                timestamp=T0),
    ActionEvent(project=PROJECT, event_id="x", trace_id="tr", name="data_extraction",
                timestamp=T0, properties={"amount": 10, "currency": "EUR"}),
]  # fmt: skip

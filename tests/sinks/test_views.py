"""Billing views on chDB: exact counts despite ReplacingMergeTree duplicates."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from meterline.schemas import ActionEvent, ActionKind, EnrichedEvent, Outcome, SeatCount, Status
from meterline.sinks.clickhouse.rows import event_row, outcome_row, seat_count_row
from meterline.sinks.clickhouse.writer import ClickHouseWriter

T0 = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)


def q(w: ClickHouseWriter, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in w.client.query(sql.format(db=w.database)).result_rows]


def ev(i: int, **kw: Any) -> tuple[Any, ...]:
    defaults: dict[str, Any] = {
        "project": "p", "event_id": f"e{i}", "trace_id": "t1", "user_id": "u1",
        "name": "object_detection", "timestamp": T0 + timedelta(minutes=i), "duration_ms": 10.0 * i,
    }  # fmt: skip
    return event_row(EnrichedEvent(event=ActionEvent(**(defaults | kw)), version=2))


def outcome(oid: str, minutes: int, **kw: Any) -> Outcome:
    base: dict[str, Any] = {
        "outcome_id": oid, "project": "p", "rule_id": "invoice_processed", "rule_revision": 1,
        "rule_name": "Invoice processed", "config_version": 1, "trace_id": "t1", "user_id": "u1",
        "event_ids": ("e1",), "value": 1.0, "timestamp": T0,
        "computed_at": T0 + timedelta(minutes=minutes),
    }  # fmt: skip
    return Outcome(**(base | kw))


def test_schema_statements_run_twice(writer: ClickHouseWriter) -> None:
    writer.ensure_schema()  # tables IF NOT EXISTS, views OR REPLACE
    names = {r[0] for r in q(writer, "SELECT name FROM system.tables WHERE database = '{db}'")}
    want = {"outcomes", "seat_counts", "display_names", "usage_by_user_monthly",
            "outcomes_by_rule_daily", "seats", "outcome_costs", "action_stats_daily"}  # fmt: skip
    assert want <= names


def test_usage_counts_each_event_once_despite_replays(writer: ClickHouseWriter) -> None:
    llm = {"kind": ActionKind.LLM_CALL, "model": "m", "name": "chat", "input_tokens": 100,
           "output_tokens": 10, "cost_usd": 0.5}  # fmt: skip
    rows = [ev(1), ev(2, **llm), ev(3, kind=ActionKind.TOOL_CALL, name="search", cost_usd=0.25)]
    writer.insert("events", rows)
    writer.insert("events", rows)  # an at-least-once replay
    assert q(writer, "SELECT user, actions, llm_calls, tool_calls, input_tokens, "
             "output_tokens, llm_cost_usd, cost_usd FROM {db}.usage_by_user_monthly") == [
        ("u1", 3, 1, 1, 100, 10, 0.5, 0.75)
    ]  # fmt: skip


def test_outcome_views_keep_the_latest_version_and_drop_retractions(
    writer: ClickHouseWriter,
) -> None:
    writer.insert("events", [ev(1, cost_usd=0.25), ev(2, kind=ActionKind.LLM_CALL, model="m",
                                                     name="chat", cost_usd=1.0)])  # fmt: skip
    writer.insert("outcomes", [outcome_row(outcome("a", 1, value=5.0))])
    writer.insert("outcomes", [outcome_row(outcome("a", 2, value=2.0))])  # later wins
    writer.insert("outcomes", [outcome_row(outcome("a", 0, value=9.0))])  # older loses
    writer.insert("outcomes", [outcome_row(outcome("b", 1))])
    writer.insert("outcomes", [outcome_row(outcome("b", 3, retracted=True, value=0.0))])
    assert q(writer, "SELECT rule_id, period_start, outcomes, value, users "
             "FROM {db}.outcomes_by_rule_monthly") == [
        ("invoice_processed", date(2026, 11, 1), 1, 2.0, 1)
    ]  # fmt: skip
    assert q(writer, "SELECT outcome_id, value, llm_cost_usd, tool_cost_usd, cost_usd "
             "FROM {db}.outcome_costs") == [("a", 2.0, 1.0, 0.0, 1.25)]  # fmt: skip


def test_action_stats_use_display_names_and_count_errors(writer: ClickHouseWriter) -> None:
    rows = [ev(i) for i in range(1, 21)] + [ev(21, status=Status.ERROR, name="data_extraction")]
    writer.insert("events", rows + rows)
    writer.insert("display_names", [("object_detection", "Object detection", 1)])
    got = q(writer, "SELECT action, display_name, calls, errors, error_rate, p50_ms, p95_ms "
            "FROM {db}.action_stats_daily ORDER BY action")  # fmt: skip
    assert got == [
        ("data_extraction", "data_extraction", 1, 1, 1.0, 210.0, 210.0),
        ("object_detection", "Object detection", 20, 0, 0.0, 110.0, 200.0),  # nearest rank
    ]


def test_seats_view_reads_the_latest_count(writer: ClickHouseWriter) -> None:
    count = SeatCount(project="p", rule_id="active_30d", rule_name="Active", period="month",
                      period_start=date(2026, 11, 1), seats=2, users=("u1", "u2"))  # fmt: skip
    writer.insert("seat_counts", [seat_count_row(count, T0)])
    fewer = count.model_copy(update={"seats": 1, "users": ("u1",)})
    writer.insert("seat_counts", [seat_count_row(fewer, T0 + timedelta(hours=1))])
    assert q(writer, "SELECT rule_id, period_start, seats, users FROM {db}.seats") == [
        ("active_30d", date(2026, 11, 1), 1, ["u1"])
    ]

"""The analytics views count each event once, like FINAL, without FINAL (real chDB)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from meterline.schemas import (
    ActionEvent,
    ActionKind,
    EnrichedEvent,
    TelemetryEvent,
    TrajectoryRecord,
)
from meterline.sinks.clickhouse.rows import event_row
from meterline.sinks.clickhouse.writer import ClickHouseWriter
from tests.sinks.analytics import assert_views_equal_final, rows

DAY1 = datetime(2025, 3, 1, 10, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
TRAJ = TrajectoryRecord(project="p", trace_id="t1", user_id="alice")


def llm(event_id: str, at: datetime, *, model: str = "gpt-4o", tokens: int = 100) -> ActionEvent:
    return ActionEvent(
        project="p",
        event_id=event_id,
        name="generate",
        kind=ActionKind.LLM_CALL,
        model=model,
        trace_id="t1",
        input_tokens=tokens,
        output_tokens=tokens // 2,
        cost_usd=0.1,  # not exact in binary: sums must still match exactly
        timestamp=at,
    )


def unjoined(ev: ActionEvent | TelemetryEvent) -> tuple[Any, ...]:
    return event_row(EnrichedEvent(event=ev, version=1))


def joined(ev: ActionEvent | TelemetryEvent) -> tuple[Any, ...]:
    return event_row(EnrichedEvent(event=ev, trajectory=TRAJ, version=2))


def deliveries() -> list[list[tuple[Any, ...]]]:
    """Sink inserts in arrival order; every kind of repeat the pipeline can write."""
    a, b, c = llm("a", DAY1), llm("b", DAY1, tokens=40), llm("c", DAY1, model="claude")
    d, e = llm("d", DAY2), llm("e", DAY2, tokens=7)
    tool = ActionEvent(
        project="p", event_id="f", name="search", kind=ActionKind.TOOL_CALL, timestamp=DAY1
    )
    tele = TelemetryEvent(
        project="p", event_id="g", event_type="user.accept", user_id="bob", timestamp=DAY2
    )
    return [
        [unjoined(a), unjoined(b), joined(c), unjoined(tool), unjoined(tele)],
        [unjoined(a), joined(b)],  # a replayed at the same version; b: 1 then 2
        [joined(d), joined(c)],  # d joined-only; c replayed at version 2
        [unjoined(d), unjoined(e), unjoined(tele)],  # d out of order: 2 then 1
        [joined(e), joined(e)],  # e: 1 then 2, twice in one insert (collapsed on insert)
    ]


def insert_all(writer: ClickHouseWriter) -> None:
    for i, batch in enumerate(deliveries()):
        writer.insert("events", batch, dedup_token=f"batch-{i}")  # each insert is kept


def test_views_equal_final_with_replays_late_joins_and_out_of_order_versions(
    writer: ClickHouseWriter,
) -> None:
    insert_all(writer)
    ch, db = writer.client, writer.database
    copies = ch.command(f"SELECT count() FROM {db}.events")
    assert copies == 13 and ch.command(f"SELECT count() FROM {db}.event_facts") == 13
    counts = assert_views_equal_final(ch, db)  # before any merge
    assert counts == [
        ("p", DAY1.date(), "llm_call", 3, 2, 1),  # a unjoined; b, c joined
        ("p", DAY1.date(), "tool_call", 1, 0, 1),
        ("p", DAY2.date(), "llm_call", 2, 2, 0),
        ("p", DAY2.date(), "telemetry", 1, 0, 1),
    ]
    usage = rows(
        ch,
        "SELECT day, user_id, model, events, input_tokens, cost_usd "
        "FROM {db}.usage_daily WHERE kind = 'llm_call' ORDER BY ALL",
        db,
    )
    assert usage == [
        (DAY1.date(), "", "gpt-4o", 1, 100, Decimal("0.1")),  # a, never joined
        (DAY1.date(), "alice", "claude", 1, 100, Decimal("0.1")),
        (DAY1.date(), "alice", "gpt-4o", 1, 40, Decimal("0.1")),
        (DAY2.date(), "alice", "gpt-4o", 2, 107, Decimal("0.2")),
    ]
    for table in ("events", "event_facts"):
        ch.command(f"OPTIMIZE TABLE {db}.{table} FINAL")
    assert ch.command(f"SELECT count() FROM {db}.event_facts") == 7
    assert assert_views_equal_final(ch, db) == counts


def test_views_filter_by_project_and_day(writer: ClickHouseWriter) -> None:
    insert_all(writer)
    writer.insert("events", [joined(llm("a", DAY1).model_copy(update={"project": "q"}))])
    got = rows(
        ch := writer.client,
        "SELECT project, events, joined FROM {db}.event_counts "
        "WHERE project = 'q' AND day = '2025-03-01'",
        writer.database,
    )
    assert got == [("q", 1, 1)]
    total = ch.command(f"SELECT sum(events) FROM {writer.database}.usage_daily WHERE project = 'p'")
    assert total == 7


def test_event_facts_is_backfilled_from_events_written_before_it_existed(
    writer: ClickHouseWriter,
) -> None:
    ch, db = writer.client, writer.database
    ch.command(f"DROP VIEW {db}.event_facts_mv")
    ch.command(f"DROP TABLE {db}.event_facts")
    insert_all(writer)  # as an older sink without the analytics tables would have
    writer.ensure_schema()
    assert ch.command(f"SELECT count() FROM {db}.events") == 13
    assert ch.command(f"SELECT count() FROM {db}.event_facts") == 7  # one block: collapsed
    writer.ensure_schema()  # idempotent: no second backfill
    assert ch.command(f"SELECT count() FROM {db}.event_facts") == 7
    assert_views_equal_final(ch, db)

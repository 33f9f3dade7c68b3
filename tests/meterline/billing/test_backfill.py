"""Backfill and seat recompute on chDB: the stream's answer, from the events table."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from meterline.billing.backfill import backfill
from meterline.billing.display_names import sync_display_names
from meterline.billing.seats import recompute_seats
from meterline.billing.source import trace_events
from meterline.schemas import EnrichedEvent, Event, TelemetryEvent, TrajectoryRecord
from meterline.sinks.clickhouse.rows import event_row
from meterline.sinks.clickhouse.writer import ClickHouseWriter
from meterline.stream_processors.rules import evaluate_trajectory
from tests.stream_processors.rules.fixtures import action, example, llm, telemetry

DAY = date(2026, 3, 10)  # the rule fixtures' T0


def store(writer: ClickHouseWriter, events: list[Event], user: str | None = "u1") -> None:
    rows = []
    for e in events:
        t = TrajectoryRecord(trace_id=e.trace_id or "-", user_id=user)
        rows.append(event_row(EnrichedEvent(event=e, trajectory=t, version=2)))
    writer.insert("events", rows)


def live(writer: ClickHouseWriter) -> dict[str, tuple[Any, ...]]:
    rows = writer.client.query(
        f"SELECT outcome_id, rule_id, rule_revision, value, event_ids FROM {writer.database}"
        ".outcomes FINAL WHERE retracted = 0"
    ).result_rows
    return {r[0]: tuple(r[1:]) for r in rows}


EVENTS: list[Event] = [
    action("d1", "object_detection", 1),
    action("x1", "data_extraction", 2, amount=1500, currency="EUR"),
    action("x2", "data_extraction", 3, amount=2000.5, currency="USD"),
    llm("l1", 4),
    telemetry("a1", "user.accept", 5),
    action("w1", "workflow_step", 6, final=True, tasks=3),
    action("d9", "object_detection", 86_400 * 2, trace="later"),  # outside the range
]


def test_backfill_writes_what_evaluating_the_stored_events_gives(
    writer: ClickHouseWriter,
) -> None:
    store(writer, EVENTS)
    config = example()
    result = backfill(writer, config, DAY, DAY)
    want = {o.outcome_id: o for o in evaluate_trajectory(config, EVENTS[:-1])}
    got = live(writer)
    assert set(got) == set(want) and result.outcomes == len(want) == 5
    for oid, o in want.items():
        assert got[oid] == (o.rule_id, o.rule_revision, o.value, list(o.event_ids))
    again = backfill(writer, config, DAY, DAY)
    assert (again.outcomes, again.retracted) == (5, 0) and live(writer) == got


def test_events_read_back_equal_the_events_sent(writer: ClickHouseWriter) -> None:
    store(writer, EVENTS[:-1])
    start = datetime(2026, 3, 10, tzinfo=UTC)
    read = trace_events(writer.client, writer.database, start, start + timedelta(days=1))
    back = {e.event.event_id: e.event for e in read}
    for sent in EVENTS[:-1]:
        assert back[sent.event_id] == sent


def test_a_revision_bump_retracts_old_outcomes_and_writes_new_ids(
    writer: ClickHouseWriter,
) -> None:
    store(writer, EVENTS)
    config = example()
    backfill(writer, config, DAY, DAY)
    before = live(writer)
    rules = tuple(
        r.model_copy(update={"revision": 2}) if r.id == "invoice_processed" else r
        for r in config.outcome_rules
    )
    bumped = config.model_copy(update={"version": 2, "outcome_rules": rules})
    result = backfill(writer, bumped, DAY, DAY)
    after = live(writer)
    assert result.retracted == 1
    assert len(after) == len(before)
    assert [v[1] for v in after.values() if v[0] == "invoice_processed"] == [2]


def test_seats_from_activity_and_identify_attributes(writer: ClickHouseWriter) -> None:
    def identify(eid: str, user: str, t: float, **attrs: Any) -> TelemetryEvent:
        return telemetry(eid, "identify", t, trace=None, user=user).model_copy(
            update={"properties": attrs}
        )

    events: list[Event] = [
        llm("l1", 0, user="u1"),
        llm("l2", -86_400 * 40, user="old"),  # active only in an earlier window
        identify("i1", "u1", 0, role="viewer", department="finance"),
        identify("i2", "u2", 0, role="admin"),
        identify("i3", "u2", 10, role="viewer"),  # the latest attributes win
    ]
    store(writer, events, user=None)
    counts = recompute_seats(writer, example(), DAY, DAY)
    by_rule = {c.rule_id: c.users for c in counts}
    assert by_rule == {"active_30d": ("u1", "u2"), "assigned_role_or_department": ("u1",)}
    rows = writer.client.query(
        f"SELECT rule_id, period_start, seats FROM {writer.database}.seats ORDER BY rule_id"
    ).result_rows
    assert [tuple(r) for r in rows] == [
        ("active_30d", date(2026, 3, 1), 2),
        ("assigned_role_or_department", date(2026, 3, 1), 1),
    ]


def test_display_names_follow_the_file(writer: ClickHouseWriter) -> None:
    config = example()
    assert sync_display_names(writer, config) == 3
    assert sync_display_names(writer, config) == 0
    fewer = config.model_copy(update={"version": 2, "display_names": {"object_detection": "OD"}})
    assert sync_display_names(writer, fewer) == 3  # one renamed, two removed
    names = dict(
        writer.client.query(
            f"SELECT action, display_name FROM {writer.database}.action_names"
        ).result_rows
    )
    assert names == {"object_detection": "OD", "data_extraction": "", "workflow_step": ""}

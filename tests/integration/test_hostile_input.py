"""Hostile but valid input stays data, and one project never counts for another."""

from __future__ import annotations

from typing import Any

import pytest

from producers import MeterlineProducer
from schemas import ActionEvent, ActionKind, TelemetryEvent, TrajectoryRecord
from stream_processors.demo.report import by_kind, counts
from tests.fixtures import wait_until

pytestmark = pytest.mark.integration

INJECTION = "x'); DROP TABLE events; --"


def test_same_event_ids_in_two_projects_are_two_events(pipeline_factory: Any) -> None:
    p = pipeline_factory()
    assert p.settings.kafka_bootstrap
    producer = MeterlineProducer(p.settings.kafka_bootstrap, topics=p.settings.topics)
    for project in ("tenant-a", "tenant-b"):
        producer.send(TrajectoryRecord(project=project, trace_id="shared-trace", user_id=project))
        for i in range(50):
            producer.send(
                ActionEvent(
                    project=project,
                    event_id=f"e{i}",
                    trace_id="shared-trace",
                    name="tool",
                    kind=ActionKind.TOOL_CALL,
                )
            )
    producer.send(
        ActionEvent(
            project="tenant-a",
            event_id="e0",
            trace_id="shared-trace",
            name="tool",
            kind=ActionKind.TOOL_CALL,
        )
    )  # a real duplicate
    assert producer.close() == 0
    db = p.settings.database

    def done() -> bool:
        return all(counts(p.clickhouse, db, t).joined == 50 for t in ("tenant-a", "tenant-b"))

    assert wait_until(done, 60, pipeline=p)
    rows = p.clickhouse.query(
        f"SELECT project, uniqExact(user_id), any(user_id) FROM {db}.events FINAL "
        "GROUP BY project ORDER BY project"
    ).result_rows
    # each project's events joined to its own trajectory, never the other's
    assert rows == [("tenant-a", 1, "tenant-a"), ("tenant-b", 1, "tenant-b")]


def test_sql_shaped_strings_are_stored_verbatim(pipeline_factory: Any) -> None:
    p = pipeline_factory()
    assert p.settings.kafka_bootstrap
    producer = MeterlineProducer(p.settings.kafka_bootstrap, topics=p.settings.topics)
    producer.send(
        ActionEvent(
            project=INJECTION,
            event_id=INJECTION,
            name=INJECTION,
            properties={INJECTION: INJECTION},
            user_id="u",
        )
    )
    producer.send(TelemetryEvent(project=INJECTION, event_id="t1", event_type=INJECTION))
    assert producer.close() == 0
    db = p.settings.database
    assert wait_until(lambda: counts(p.clickhouse, db, INJECTION).events == 2, 60, pipeline=p)
    assert by_kind(p.clickhouse, db, INJECTION) == [("action", 1), ("telemetry", 1)]
    ((name, props),) = p.clickhouse.query(
        f"SELECT name, properties FROM {db}.events FINAL WHERE event_id = %(e)s",
        parameters={"e": INJECTION},
    ).result_rows
    assert name == INJECTION and INJECTION in props
    assert p.clickhouse.query(f"EXISTS TABLE {db}.events").result_rows == [(1,)]

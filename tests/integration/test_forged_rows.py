"""Forged rows on real Tansu + chDB: a client that can write meterline's output topics
forges an enriched row for another project's event at a version the processor never emits
(issue 21, item 6). The sink dead-letters it (``impossible_version``) and the victim's bill
is unchanged. (Kafka ACLs keep such clients off the output topics: docs/deployment.md.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Producer

from meterline.embedded.runtime import Pipeline
from meterline.producers import MeterlineProducer
from meterline.schemas import ActionEvent, ActionKind, EnrichedEvent, encode
from tests.fixtures import wait_until

pytestmark = pytest.mark.integration


def llm_call(project: str, event_id: str, cost: float) -> ActionEvent:
    return ActionEvent(
        project=project, event_id=event_id, trace_id=f"{project}-t", user_id="alice",
        kind=ActionKind.LLM_CALL, name="chat", model="gpt-4o", cost_usd=cost,
    )  # fmt: skip


def monthly_cost(p: Pipeline, project: str) -> float:
    rows = p.clickhouse.query(
        f"SELECT sum(cost_usd) FROM {p.settings.database}.usage_by_user_monthly "
        "WHERE project = %(p)s",
        parameters={"p": project},
    ).result_rows
    return float(rows[0][0] or 0)


def test_a_forged_enriched_row_at_an_impossible_version_is_dead_lettered(
    pipeline_factory: Callable[..., Pipeline],
) -> None:
    p = pipeline_factory()
    db, topics = p.settings.database, p.settings.topics
    assert p.settings.kafka_bootstrap
    sdk = MeterlineProducer(p.settings.kafka_bootstrap, topics=topics)
    sdk.send_many([llm_call("victim", "call-1", 0.05)])
    assert sdk.flush() == 0
    assert wait_until(lambda: monthly_cost(p, "victim") > 0, 60, pipeline=p)
    before = monthly_cost(p, "victim")

    # the forger: a raw event under the victim's project, and enriched rows written straight
    # to the output topic at version 4e9 (ReplacingMergeTree would keep them for good)
    sdk.send_many([llm_call("victim", "forged-raw", 0.0)])
    assert sdk.flush() == 0
    forged = [
        EnrichedEvent(event=llm_call("victim", event_id, 1_499.0), version=4_000_000_000)
        for event_id in ("call-1", "forged-raw")
    ]
    forger = Producer({"bootstrap.servers": p.settings.kafka_bootstrap})
    for row in forged:
        forger.produce(topics.enriched, encode(row), key=b"victim-t")
    assert forger.flush(30) == 0
    sdk.send_many([llm_call("other", "after", 0.01)])  # lands after the forged rows
    assert sdk.close() == 0

    def letters() -> list[tuple[Any, ...]]:
        return p.clickhouse.query(
            f"SELECT error_type, stage, reason, payload_preview FROM {db}.dead_letters "
            "ORDER BY offset"
        ).result_rows

    assert wait_until(
        lambda: len(letters()) == 2 and monthly_cost(p, "other") > 0, 60, pipeline=p
    ), letters()
    assert monthly_cost(p, "victim") == pytest.approx(before)
    assert before < 1
    for (error_type, stage, reason, preview), row in zip(letters(), forged, strict=True):
        assert (error_type, stage) == ("impossible_version", "sink")
        assert "version: 4000000000 " in reason
        assert row.event.event_id in preview
    costs = p.clickhouse.query(
        f"SELECT event_id, cost_usd, version FROM {db}.events FINAL "
        "WHERE project = 'victim' ORDER BY event_id"
    ).result_rows
    assert [e for e, _, _ in costs] == ["call-1", "forged-raw"], costs
    assert all(v in (1, 2) and c < 1 for _, c, v in costs), costs

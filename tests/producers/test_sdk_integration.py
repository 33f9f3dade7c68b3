"""All five tracking APIs through the real pipeline (Tansu + Faust + chDB) into ClickHouse.

One pipeline for the module's single test: starting one costs ~5 s, so every API and the
redaction check share it.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from meterline.embedded.runtime import Pipeline
from meterline.producers import (
    ActionTracer,
    AgentSightTracker,
    MeterlineClient,
    MeterlinePublisher,
    action,
    record_action,
    record_tool,
    send_outcome,
)
from meterline.producers import telemetry as tj
from tests.fixtures import wait_until

pytestmark = pytest.mark.integration

SECRET = "sk-live-0123456789abcdefSECRET"
PROJECT = "it-sdk"


def _raw_topic_bytes(p: Pipeline) -> bytes:
    """Every message currently in the three raw topics, concatenated."""
    assert p.settings.kafka_bootstrap
    consumer = Consumer({"bootstrap.servers": p.settings.kafka_bootstrap,
                         "group.id": f"raw-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False})
    try:
        parts: list[TopicPartition] = []
        for topic in p.settings.topics.raw:
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            for pid in meta.partitions:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, pid), timeout=10)
                if high > 0:
                    parts.append(TopicPartition(topic, pid, OFFSET_BEGINNING))
        consumer.assign(parts)
        chunks: list[bytes] = []
        idle_until = time.monotonic() + 3.0
        while time.monotonic() < idle_until:
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            chunks.append(msg.value() or b"")
            idle_until = time.monotonic() + 1.0
        return b"\n".join(chunks)
    finally:
        consumer.close()


def _emit_from_every_api(client: MeterlineClient, trace_id: str) -> dict[str, int]:
    # valmi
    with action("object_detection", user_id="user_123", trace_id=trace_id, client=client,
                metadata={"api_key": SECRET}):
        pass
    with pytest.raises(ValueError), action("data_extraction", anonymous_id="anon_456",
                                            trace_id=trace_id, client=client):
        raise ValueError("unreadable scan")
    send_outcome("invoice_processed", user_id="user_123", trace_id=trace_id, client=client,
                 idempotency_key="invoice-1")
    # agentsight
    r = AgentSightTracker(client).track_action(
        action_name="weather_lookup", duration_ms=800, conversation_id="conv-it",
        tools_used={"api": "OpenWeatherMap"}, response="Sunny", metadata={"api_key": SECRET})
    assert r["status"] == "success"
    # machina
    tracer = ActionTracer()
    MeterlinePublisher(client, trace_id=trace_id).attach(tracer)
    with tracer.trace("connector_query", connector="crm", operation="lookup_customer"):
        pass
    # agentops
    @record_tool("fetchFromDB", client=client)
    async def fetch(key: str) -> str:
        return key.upper()

    @record_action("summarise", client=client)
    def summarise(text: str) -> str:
        raise RuntimeError("model overloaded")

    asyncio.run(fetch("k"))
    with pytest.raises(RuntimeError):
        summarise("long text")
    # trajectory telemetry: the trajectory record and two events, confirmed by the broker
    with tj.trace(trace_id, user_id="user_123") as trace:
        trace.event("user.accept", {"suggestion": 1})
        trace.event("tool.call", {"tool": "search"}, metadata={"api_key": SECRET})
    result = tj.upload_trace(trace, client=client)
    assert (result.pushed, result.skipped, result.errors) == (2, 0, [])
    return {"valmi": 3, "agentsight": 1, "machina": 1, "agentops": 3, "sdk": 2}


def test_events_from_all_five_apis_land_in_clickhouse_and_secrets_never_leave(
    pipeline_factory: Any,
) -> None:
    p: Pipeline = pipeline_factory()
    assert p.settings.kafka_bootstrap
    client = MeterlineClient.from_kafka(p.settings.kafka_bootstrap,
                                        topic_prefix=p.settings.topic_prefix, project=PROJECT,
                                        flush_at_exit=False)
    trace_id = uuid.uuid4().hex
    want = _emit_from_every_api(client, trace_id)
    assert client.close(20) == 0
    assert client.stats.failed == client.stats.dropped == client.stats.build_errors == 0
    assert_landed_and_no_secret_left(p, trace_id, want)


def assert_landed_and_no_secret_left(p: Pipeline, trace_id: str, want: dict[str, int]) -> None:
    """What :func:`_emit_from_every_api` sent is in ClickHouse and the raw topics, redacted
    (shared with the HTTP transport's test, tests/producers/test_http_integration.py)."""
    ch, db = p.clickhouse, p.settings.database

    def by_source() -> dict[str, int]:
        rows = ch.query(f"SELECT source, count() FROM {db}.events FINAL "
                        f"WHERE project = '{PROJECT}' GROUP BY source").result_rows
        return {str(s): int(n) for s, n in rows}

    assert wait_until(lambda: by_source() == want, 60, pipeline=p), by_source()
    rows = ch.query(
        f"SELECT name, kind, status, user_id, anonymous_id, session_id, error_message, "
        f"parent_event_id, event_id, properties, metadata, trace_id "
        f"FROM {db}.events FINAL WHERE project = '{PROJECT}'").named_results()
    ev = {r["name"]: r for r in rows}
    assert ev["object_detection"]["status"] == "success"
    assert ev["object_detection"]["user_id"] == "user_123"
    assert ev["data_extraction"]["status"] == "error"
    assert ev["data_extraction"]["anonymous_id"] == "anon_456"
    assert ev["data_extraction"]["error_message"] == "unreadable scan"
    assert ev["weather_lookup"]["session_id"] == "conv-it"
    assert ev["lookup_customer"]["kind"] == "tool_call"
    assert ev["fetchFromDB"]["kind"] == "tool_call"
    assert ev["RuntimeError"]["kind"] == "error"
    assert ev["RuntimeError"]["parent_event_id"] == ev["summarise"]["event_id"]
    outcome = json.loads(ev["outcome.invoice_processed"]["properties"])
    assert outcome["outcome"] == "invoice_processed"
    assert ev["tool.call"]["trace_id"] == trace_id
    assert json.loads(ev["object_detection"]["metadata"]) == {"api_key": "[REDACTED]"}
    traj = ch.query(f"SELECT status FROM {db}.trajectories FINAL "
                    f"WHERE trace_id = '{trace_id}'").result_rows
    assert traj == [("success",)]

    dump = ch.query(f"SELECT * FROM {db}.events FINAL WHERE project = '{PROJECT}'").result_rows
    assert SECRET not in repr(dump) and SECRET[:10] not in repr(dump)
    raw = _raw_topic_bytes(p)
    assert raw.count(b'"type":"action"') == 7 and raw.count(b'"type":"telemetry"') == 3
    assert raw.count(b'"type":"trajectory"') == 1 and b"weather_lookup" in raw
    assert SECRET.encode() not in raw and b"sk-live" not in raw

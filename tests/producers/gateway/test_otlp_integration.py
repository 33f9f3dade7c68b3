"""POST /v1/traces with the real OpenTelemetry SDK and OTLP/HTTP exporter, on Tansu + chDB."""

from __future__ import annotations

import gzip
import json
import urllib.request
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from meterline.producers.gateway import KeyStore
from tests.fixtures import wait_until

pytestmark = pytest.mark.integration


def agent_run(user: str, conversation: str) -> list[ReadableSpan]:
    """One agent run as GenAI-instrumented code records it: an agent span, two chat spans
    (current and previous attribute names), a tool span, and one span without GenAI."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "support-bot"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("invoke_agent support", attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support",
        "gen_ai.agent.id": "agent-1", "gen_ai.conversation.id": conversation, "user.id": user,
    }):  # fmt: skip
        with tracer.start_as_current_span("chat gpt-4o", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.provider.name": "openai",
            "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 20,
            "gen_ai.usage.cache_read.input_tokens": 40,
        }):  # fmt: skip
            pass
        with tracer.start_as_current_span("chat claude", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "claude-sonnet-4",
            "gen_ai.system": "anthropic", "gen_ai.usage.prompt_tokens": 50,
            "gen_ai.usage.completion_tokens": 5, "error.type": "RateLimitError",
        }) as failed:  # fmt: skip
            failed.set_status(Status(StatusCode.ERROR, "429 from upstream"))
        with tracer.start_as_current_span("execute_tool lookup", attributes={
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order",
        }):  # fmt: skip
            pass
        with tracer.start_as_current_span("GET /orders"):
            pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def _landed(pipeline: Any, trace_id: str) -> list[tuple[Any, ...]]:
    db = pipeline.settings.database
    return [tuple(r) for r in pipeline.clickhouse.query(
        f"SELECT kind, name, model, provider, input_tokens, output_tokens, cached_tokens, status,"
        f" error_type, user_id, session_id, joined, source FROM {db}.events FINAL"
        f" WHERE trace_id = %(t)s ORDER BY name", parameters={"t": trace_id},
    ).result_rows]  # fmt: skip


def _check_run(pipeline: Any, trace_id: str, user: str, conversation: str) -> None:
    assert wait_until(lambda: len(_landed(pipeline, trace_id)) == 3
                      and all(r[11] == 1 for r in _landed(pipeline, trace_id)), 60,
                      pipeline=pipeline), _landed(pipeline, trace_id)  # fmt: skip
    assert _landed(pipeline, trace_id) == [
        ("llm_call", "chat claude", "claude-sonnet-4", "anthropic", 50, 5, 0, "error",
         "RateLimitError", user, conversation, 1, "otlp"),
        ("llm_call", "chat gpt-4o", "gpt-4o-2024-08-06", "openai", 100, 20, 40, "success",
         "", user, conversation, 1, "otlp"),
        ("tool_call", "lookup_order", "", "", 0, 0, 0, "success", "", user, conversation, 1,
         "otlp"),
    ]  # fmt: skip
    db = pipeline.settings.database
    traj = pipeline.clickhouse.query(
        f"SELECT project, user_id, agent_id, status, started_at IS NOT NULL, ended_at IS NOT NULL"
        f" FROM {db}.trajectories FINAL WHERE trace_id = %(t)s", parameters={"t": trace_id},
    ).result_rows  # fmt: skip
    assert [tuple(r) for r in traj] == [("acme", user, "agent-1", "success", True, True)]


def test_otlp_protobuf_export_lands_genai_spans_and_a_retry_counts_once(
    gateway_factory: Any, keystore: KeyStore
) -> None:
    pipeline, gw = gateway_factory()
    _, key = keystore.create("acme", "otel")
    spans = agent_run("u-42", "conv-9")
    exporter = OTLPSpanExporter(endpoint=gw.url + "/v1/traces", compression=Compression.Gzip,
                                headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert exporter.export(spans) is SpanExportResult.SUCCESS  # the exporter's retry
    trace_id = format(spans[0].context.trace_id, "032x")
    _check_run(pipeline, trace_id, "u-42", "conv-9")
    db = pipeline.settings.database
    rows = pipeline.clickhouse.query(  # not FINAL: the dedupe, not the merge, kept one
        f"SELECT count() FROM {db}.events WHERE trace_id = %(t)s", parameters={"t": trace_id}
    ).result_rows
    assert rows[0][0] == 3

    bad = OTLPSpanExporter(endpoint=gw.url + "/v1/traces", headers={"Authorization": "Bearer x"})
    assert bad.export(spans) is SpanExportResult.FAILURE


def test_otlp_json_export_lands_and_answers_partial_success(
    gateway_factory: Any, keystore: KeyStore
) -> None:
    pipeline, gw = gateway_factory()
    _, key = keystore.create("acme", "otel-json")
    spans = agent_run("u-43", "conv-10")
    # OTLP JSON as the spec writes it: the SDK's own encoding, ids in hex
    doc = json_format.MessageToDict(encode_spans(spans))
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for name in ("traceId", "spanId", "parentSpanId"):
                    if name in span:
                        import base64

                        span[name] = base64.b64decode(span[name]).hex()
    req = urllib.request.Request(
        gw.url + "/v1/traces", data=gzip.compress(json.dumps(doc).encode()), method="POST",
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip",
                 "Authorization": f"Bearer {key}"},
    )  # fmt: skip
    with urllib.request.urlopen(req, timeout=30) as resp:
        answer = json.loads(resp.read())
    assert resp.status == 200
    assert answer == {"partialSuccess": {"errorMessage": "1 span(s) without GenAI mapping ignored"}}
    _check_run(pipeline, format(spans[0].context.trace_id, "032x"), "u-43", "conv-10")

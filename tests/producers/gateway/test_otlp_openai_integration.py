"""The official GenAI instrumentation of the real ``openai`` client, through the gateway.

``opentelemetry-instrumentation-openai-v2`` (OpenTelemetry's own) instruments
``openai.OpenAI`` answering canned HTTP (``httpx2.MockTransport``, the chat completion of
tests/producers/llm/fixtures.py); its spans go with the OTLP/HTTP exporter to ``/v1/traces``
of a gateway on real Tansu + chDB, and ClickHouse shows the call with its tokens.

Needs the instrumentation from the ``dev`` extra (pyproject.toml: it pins
``opentelemetry-util-genai<1.2``, whose 1.2 dropped a module the instrumentation imports, and
adds ``httpx``, which the instrumentation imports while openai 3 brings only httpx2).
"""

from __future__ import annotations

from typing import Any

import httpx2
import openai
import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation import openai_v2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from meterline.producers.gateway import KeyStore
from tests.fixtures import wait_until
from tests.producers.llm.fixtures import chat_completion

pytestmark = pytest.mark.integration



def test_openai_v2_instrumentation_spans_land_with_their_tokens(
    gateway_factory: Any, keystore: KeyStore
) -> None:
    pipeline, gw = gateway_factory()
    _, key = keystore.create("acme", "openai-v2")
    provider = TracerProvider(resource=Resource.create({"service.name": "oai-agent"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
        endpoint=gw.url + "/v1/traces", compression=Compression.Gzip,
        headers={"Authorization": f"Bearer {key}"})))  # fmt: skip
    instrumentor = openai_v2.OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    body = chat_completion(prompt=1200, completion=80)
    try:
        client = openai.OpenAI(api_key="test", max_retries=0, http_client=httpx2.Client(
            transport=httpx2.MockTransport(lambda request: httpx2.Response(200, json=body))))
        tracer = provider.get_tracer("agent")
        with tracer.start_as_current_span("invoke_agent bot", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "bot",
            "user.id": "u-oai",
        }) as agent:  # fmt: skip
            answer = client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hello"}])
        assert answer.usage is not None and answer.usage.prompt_tokens == 1200
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
    trace_id = format(agent.get_span_context().trace_id, "032x")
    db = pipeline.settings.database

    def landed() -> list[tuple[Any, ...]]:
        return [tuple(r) for r in pipeline.clickhouse.query(
            f"SELECT kind, name, model, provider, input_tokens, output_tokens, user_id, joined,"
            f" source FROM {db}.events FINAL WHERE trace_id = %(t)s", parameters={"t": trace_id},
        ).result_rows]  # fmt: skip

    assert wait_until(lambda: [r[7] for r in landed()] == [1], 60, pipeline=pipeline), landed()
    assert landed() == [("llm_call", "chat gpt-4o", body["model"], "openai", 1200, 80, "u-oai",
                         1, "otlp")]  # fmt: skip

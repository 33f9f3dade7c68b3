"""machina "Observability": ActionTracer, TraceEntry, JSONLExporter, and publishing."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from meterline.producers.sdk import MeterlineClient
from meterline.producers.testing import MemorySink
from meterline.producers.tracer import ActionTracer, JSONLExporter, MeterlinePublisher, TraceEntry
from meterline.schemas import ActionEvent
from tests.producers.fixtures import flushed


class _Llm:
    async def complete(self, messages: list[dict[str, str]]) -> str:
        await asyncio.sleep(0.005)
        return "The answer is 42. " * 20


def test_documented_example_records_a_timed_entry() -> None:
    llm, messages = _Llm(), [{"role": "user", "content": "?"}]

    async def agent() -> ActionTracer:
        # --- from the document, unchanged ---
        tracer = ActionTracer()
        with tracer.trace("llm_call", operation="complete") as span:
            result = await llm.complete(messages)
            span.output_summary = result[:100]
        # --- end ---
        return tracer

    tracer = asyncio.run(agent())
    (entry,) = tracer.entries
    assert isinstance(entry, TraceEntry)
    assert entry.action == "llm_call" and entry.operation == "complete"
    assert entry.success and entry.error is None and entry.duration_ms >= 5
    assert entry.output_summary == ("The answer is 42. " * 20)[:100]


def test_exceptions_are_recorded_then_re_raised() -> None:
    tracer = ActionTracer()
    with pytest.raises(RuntimeError), tracer.trace("connector_query", connector="pg"):
        raise RuntimeError("connection refused")
    (entry,) = tracer.entries
    assert not entry.success and entry.error == "RuntimeError: connection refused"


def test_entries_subscribe_record_clear_summary_and_max_entries() -> None:
    tracer = ActionTracer(max_entries=2)
    seen: list[TraceEntry] = []
    tracer.subscribe(seen.append)
    tracer.subscribe(lambda e: 1 / 0)  # a failing subscriber does not break recording
    for i in range(3):
        with tracer.trace("tool_call", operation=f"op{i}", conversation_id="c", asset_id="a"):
            pass
    tracer.record(TraceEntry(action="workflow_step"))
    assert [e.operation for e in seen] == ["op0", "op1", "op2", ""]
    assert [e.action for e in tracer.entries] == ["tool_call", "workflow_step"]  # newest 2
    summary = tracer.summary()
    assert json.loads(json.dumps(summary)) == summary and summary[0]["operation"] == "op2"
    tracer.clear()
    assert tracer.entries == []
    with pytest.raises(ValueError):
        ActionTracer(max_entries=0)


def test_trace_metadata_kwargs_and_redacting_dump_json() -> None:
    tracer = ActionTracer()
    with tracer.trace("llm_call", api_key="sk-abc123456789", model="gpt-4o", password="p") as e:
        e.input_summary = "x" * 5000
    assert e.metadata["model"] == "gpt-4o"
    data = json.loads(e.redacting_dump_json(max_summary_chars=10))
    assert data["metadata"] == {"api_key": "[REDACTED]", "model": "gpt-4o",
                                "password": "[REDACTED]"}
    assert data["input_summary"] == "x" * 10
    assert "sk-abc123456789" in e.model_dump_json()  # the plain dump does not redact
    assert len(json.loads(e.redacting_dump_json())["input_summary"]) == 2000


def test_jsonl_exporter_writes_one_redacted_line_per_entry_per_day(tmp_path: Path) -> None:
    tracer = ActionTracer()
    exporter = JSONLExporter(tmp_path / "traces")
    exporter.attach(tracer)
    with tracer.trace("tool_call", token="t0ps3cret"):
        pass
    tracer.record(TraceEntry(action="old", timestamp=datetime(2024, 1, 15, tzinfo=UTC)))
    today = datetime.now(UTC).date().isoformat()
    lines = (tmp_path / "traces" / f"traces-{today}.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["metadata"] == {"token": "[REDACTED]"}
    assert (tmp_path / "traces" / "traces-2024-01-15.jsonl").read_text().count("\n") == 1

    flat = JSONLExporter(tmp_path / "flat", rotate_daily=False, max_summary_chars=3)
    flat.write(TraceEntry(action="a", output_summary="abcdef"))
    assert json.loads((tmp_path / "flat" / "traces.jsonl").read_text())["output_summary"] == "abc"


def test_jsonl_exporter_raises_when_the_parent_is_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        JSONLExporter(tmp_path / "missing" / "traces")


def test_publisher_sends_entries_to_meterline(client: MeterlineClient, sink: MemorySink) -> None:
    tracer = ActionTracer()
    MeterlinePublisher(client, user_id="u1", trace_id="t1").attach(tracer)
    with tracer.trace("llm_call", operation="complete", conversation_id="conv",
                      model="gpt-4o", api_key="sk-abcdef1234567") as span:
        span.input_tokens, span.output_tokens = 10, 5
    with pytest.raises(KeyError), tracer.trace("connector_query", connector="crm"):
        raise KeyError("missing")
    llm, query = flushed(client, sink).of_type(ActionEvent)
    entries: list[Any] = tracer.entries
    assert llm.event_id == entries[0].id and llm.kind == "llm_call" and llm.model == "gpt-4o"
    assert llm.name == "complete" and llm.session_id == "conv" and llm.input_tokens == 10
    assert llm.user_id == "u1" and llm.trace_id == "t1" and llm.source == "machina"
    assert llm.metadata["api_key"] == "[REDACTED]"
    assert query.kind == "tool_call" and query.status == "error"
    assert query.error_type == "KeyError" and query.properties["connector"] == "crm"

"""AgentOps "Events": the four event classes, record(), and the decorators."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, tzinfo

import pytest

from meterline.producers.agentops import (
    ActionEvent,
    ErrorEvent,
    Event,
    LLMEvent,
    ToolEvent,
    record,
    record_action,
    record_tool,
)
from meterline.producers.sdk import MeterlineClient
from meterline.producers.testing import MemorySink
from meterline.schemas import ActionEvent as WireAction
from tests.producers.fixtures import flushed


def test_event_is_abstract_and_defaults_are_documented() -> None:
    with pytest.raises(TypeError):
        Event()
    ev = ActionEvent(action_type="Click", logs="Executed action successfully",
                     screenshot="/path/to/screenshot.png", params={"param1": "value1"},
                     returns="Success")
    assert isinstance(ev.id, uuid.UUID) and ev.agent_id is None
    assert datetime.fromisoformat(ev.init_timestamp) <= datetime.fromisoformat(ev.end_timestamp)
    assert ActionEvent("Click").action_type == "Click"
    tool = ToolEvent(name="Parsing Tool", logs={"status": "success"})
    assert tool.params is None and tool.returns is None
    llm = LLMEvent(prompt="What's the weather today?", prompt_tokens=5,
                   completion="It's sunny and warm.", completion_tokens=4, model="gpt-4o")
    assert llm.thread_id is None
    err = ErrorEvent(trigger_event=tool, error_type="Runtime Error", code="ERR001",
                     details="Null pointer exception", logs="Error occurred at line 10")
    assert datetime.fromisoformat(err.timestamp)


def test_a_new_event_ends_when_it_starts_even_if_the_clock_ticks_between_its_fields(
    monkeypatch: pytest.MonkeyPatch, client: MeterlineClient, sink: MemorySink
) -> None:
    ticks = iter(range(100))

    class TickingClock(datetime):
        """A clock a millisecond further at every read."""

        @classmethod
        def now(cls, tz: tzinfo | None = None) -> TickingClock:
            return cls(2026, 11, 29, 6, 0, 0, next(ticks) * 1000, tzinfo=tz)

    monkeypatch.setattr("meterline.producers.agentops.datetime", TickingClock)
    tool = ToolEvent(name="searchWeb")  # one clock read: init 000, and end the same
    assert tool.end_timestamp == tool.init_timestamp == "2026-11-29T06:00:00.000Z"
    assert ToolEvent(name="x", end_timestamp="2026-11-29T07:00:00.000Z").end_timestamp == (
        "2026-11-29T07:00:00.000Z"
    )
    record(tool)  # still "not ended": record() ends it now (the next tick)
    (t,) = flushed(client, sink).of_type(WireAction)
    assert t.duration_ms is not None and t.duration_ms > 0


def test_record_maps_each_event_type_to_the_wire(client: MeterlineClient, sink: MemorySink) -> None:
    agent = uuid.UUID("123e4567-e89b-12d3-a456-426614174000")
    tool = ToolEvent(name="searchWeb", agent_id=agent)  # created before running the tool
    time.sleep(0.005)
    record(tool)
    record(LLMEvent(prompt="hi", prompt_tokens=5, completion="hello", completion_tokens=4,
                    model="gpt-4o"))
    record(ErrorEvent(trigger_event=tool, error_type="Runtime Error", code="ERR001",
                      details="Null pointer exception"))
    record(ActionEvent(action_type="Click"))
    t, llm, err, act = flushed(client, sink).of_type(WireAction)
    assert t.kind == "tool_call" and t.name == "searchWeb" and t.event_id == tool.id.hex
    assert t.duration_ms is not None and t.duration_ms >= 5 and t.agent_id == str(agent)
    assert llm.kind == "llm_call" and llm.model == "gpt-4o"
    assert (llm.input_tokens, llm.output_tokens) == (5, 4)
    assert err.kind == "error" and err.status == "error" and err.parent_event_id == tool.id.hex
    assert err.error_type == "Runtime Error" and err.error_message == "Null pointer exception"
    assert err.properties["code"] == "ERR001"
    assert act.kind == "action" and act.name == "Click" and act.source == "agentops"


def test_record_action_captures_params_returns_and_time(
    client: MeterlineClient, sink: MemorySink
) -> None:
    @record_action("sum")
    def add(a: int, b: int = 2) -> int:
        time.sleep(0.003)
        return a + b

    assert add(1) == 3
    (ev,) = flushed(client, sink).of_type(WireAction)
    assert ev.name == "sum" and ev.kind == "action"
    assert ev.properties["params"] == {"a": 1, "b": 2} and ev.properties["returns"] == 3
    assert ev.duration_ms is not None and ev.duration_ms >= 3


def test_record_tool_on_async_functions_and_errors_reference_their_trigger(
    client: MeterlineClient, sink: MemorySink
) -> None:
    @record_tool("fetchFromDB")
    async def fetch(key: str, token: str) -> dict[str, str]:
        await asyncio.sleep(0)
        if key == "missing":
            raise LookupError("no row")
        return {"key": key}

    assert asyncio.run(fetch("k1", token="tok_123")) == {"key": "k1"}
    with pytest.raises(LookupError):
        asyncio.run(fetch("missing", token="tok_123"))
    ok, failed, error = flushed(client, sink).of_type(WireAction)
    assert ok.kind == "tool_call" and ok.name == "fetchFromDB"
    assert ok.properties["params"] == {"key": "k1", "token": "[REDACTED]"}
    assert ok.properties["returns"] == {"key": "k1"} and ok.status == "success"
    assert failed.status == "error" and failed.error_message == "no row"
    assert error.kind == "error" and error.parent_event_id == failed.event_id
    assert error.error_type == "LookupError" and error.error_message == "no row"
    assert error.properties["logs"] and "Traceback" in error.properties["logs"]

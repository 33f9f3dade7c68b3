"""Issue 22 section 1: metering never breaks the agent, whatever the SDK's state."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import meterline.producers
from meterline.producers import (
    ActionTracer,
    AgentSightTracker,
    MeterlineClient,
    MeterlinePublisher,
    NotConfigured,
    UnconfiguredClient,
    action,
    agentops,
    config,
    current,
    record_action,
    record_tool,
    safety,
    send_outcome,
    track_action,
)
from meterline.producers import telemetry as tj
from meterline.producers.llm import recorder as llm_recorder
from meterline.producers.testing import MemorySink

DOCS = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"


@pytest.fixture
def unconfigured(monkeypatch: pytest.MonkeyPatch) -> Iterator[UnconfiguredClient]:
    """No meterline.init, no METERLINE_KAFKA_BOOTSTRAP, not strict."""
    monkeypatch.delenv("METERLINE_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.delenv("METERLINE_STRICT", raising=False)
    stand_in = UnconfiguredClient()
    monkeypatch.setattr(current, "_unconfigured", stand_in)
    monkeypatch.setattr(safety, "_strict", None)
    old = config.set_client(None)
    yield stand_in
    config.set_client(old)


def _every_api(expected_drops: list[int]) -> None:
    """Each tracking API once, as agent code would call it; none may raise."""
    with action("object_detection", user_id="u") as act:
        act.properties["objects"] = 3
    # the agent's own exception passes through unchanged
    with pytest.raises(KeyError), action("failing", user_id="u"):
        raise KeyError("agent bug")
    assert AgentSightTracker().track_action(action_name="a", duration_ms=5)["status"] == "error"
    assert track_action("calc", duration_ms=1)["status"] == "error"
    assert send_outcome("invoice_processed", user_id="u")

    @record_action("work")
    def work(x: int) -> int:
        return x * 2

    @record_tool("fetch")
    async def fetch(key: str) -> str:
        return key.upper()

    assert work(21) == 42
    assert asyncio.run(fetch("k")) == "K"
    assert agentops.record(agentops.ToolEvent(name="t")) is False
    tracer = ActionTracer()
    MeterlinePublisher().attach(tracer)
    with tracer.trace("llm_call", operation="op") as entry:
        entry.input_tokens = 3
    result = tj.push_events([tj.TelemetryEvent(event_type="user.accept", session_id="s")])
    assert result.pushed == 0 and result.errors
    with tj.trace(user_id="u") as trace:
        trace.event("tool.call", {"tool": "search"})
    assert tj.upload_trace(trace).pushed == 0
    expected_drops.append(1)


def test_unconfigured_every_api_runs_the_agent_code_warns_once_and_counts(
    unconfigured: UnconfiguredClient, caplog: pytest.LogCaptureFixture
) -> None:
    drops: list[int] = []
    with caplog.at_level(logging.WARNING, logger="producers"):
        _every_api(drops)
    assert drops == [1]
    warnings = [r for r in caplog.records if "not configured" in r.getMessage()]
    assert len(warnings) == 1
    # 2 actions, 2 track_action, 1 outcome, 2 decorated calls, 1 agentops record, 1 tracer
    # entry, 1 push_events call, 1 upload_trace call
    assert unconfigured.stats.dropped == 11
    assert meterline.producers.get_client() is unconfigured


def test_init_without_a_broker_returns_the_stand_in_and_strict_raises(
    unconfigured: UnconfiguredClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert meterline.init(auto_instrument=False) is unconfigured
    with pytest.raises(NotConfigured):
        meterline.init(strict=True)
    try:
        with pytest.raises(NotConfigured), action("x", user_id="u"):
            pass
        with pytest.raises(NotConfigured):
            AgentSightTracker().track_action(action_name="a")
    finally:
        safety.set_strict(None)
    monkeypatch.setenv("METERLINE_STRICT", "1")
    with pytest.raises(NotConfigured):
        send_outcome("x")


def test_a_closed_or_broken_client_never_raises_into_agent_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("METERLINE_STRICT", raising=False)
    client = MeterlineClient(MemorySink(), flush_at_exit=False)
    client.close(1)
    with action("after_close", client=client):
        pass
    assert AgentSightTracker(client).track_action(action_name="a")["status"] == "error"
    assert client.stats.dropped == 2

    broken = MeterlineClient(MemorySink(), flush_at_exit=False)

    def explode(*_: Any) -> bool:
        raise RuntimeError("SDK bug")

    monkeypatch.setattr(broken, "submit", explode)
    old = config.set_client(broken)
    try:
        before = safety.failures()
        with action("x", client=broken):
            pass
        assert AgentSightTracker(broken).track_action(action_name="a")["status"] == "error"
        assert agentops.record(agentops.ToolEvent(name="t"), client=broken) is False

        @record_action("w", client=broken)
        def w() -> str:
            return "done"

        assert w() == "done"
        assert safety.failures() - before == 4  # action, track_action, record, w()
    finally:
        config.set_client(old)
        broken.close(1)


def test_action_and_track_action_have_explicit_typed_signatures() -> None:
    for func, names in (
        (action, ["name", "user_id", "anonymous_id", "trace_id", "session_id", "properties",
                  "metadata", "idempotency_key", "client"]),
        (track_action, ["action_name", "started_at", "ended_at", "duration_ms", "tools_used",
                        "response", "error_msg", "conversation_id", "metadata",
                        "idempotency_key"]),
    ):
        params = inspect.signature(func).parameters
        assert list(params) == names
        assert all(p.kind is not p.VAR_KEYWORD for p in params.values())
        assert all(p.annotation is not inspect.Parameter.empty for p in params.values())


def test_every_documented_import_works_and_ambiguous_names_say_where_to_look() -> None:
    imports = re.findall(r"^from (meterline[\w.]*) import ([\w, ]+)$", DOCS.read_text(), re.M)
    assert len(imports) >= 4
    for module, names in imports:
        mod = __import__(module, fromlist=["_"])
        for name in (n.strip().split(" as ")[0] for n in names.split(",")):
            assert getattr(mod, name) is not None, f"from {module} import {name}"
    for name, where in (("ActionEvent", "meterline.producers.agentops.ActionEvent"),
                        ("TelemetryEvent", "meterline.producers.telemetry.TelemetryEvent")):
        with pytest.raises(ImportError, match=re.escape(where)):
            exec(f"from meterline import {name}")


def test_the_llm_recorder_counts_emitted_only_when_the_client_accepted(
    unconfigured: UnconfiguredClient,
) -> None:
    before = llm_recorder.stats.emitted, llm_recorder.stats.emit_failed
    llm_recorder._safe_emit(llm_recorder.sdk_emit, _llm_event())
    assert (llm_recorder.stats.emitted, llm_recorder.stats.emit_failed) == (
        before[0], before[1] + 1)


def _llm_event() -> Any:
    from meterline.schemas import ActionEvent, ActionKind

    return ActionEvent(event_id="l1", name="chat", kind=ActionKind.LLM_CALL, model="m")


def test_init_instruments_a_client_library_imported_after_it_without_importing_it() -> None:
    code = (
        "import sys, meterline\n"
        "c = meterline.init('127.0.0.1:1', flush_at_exit=False)\n"
        "assert 'openai' not in sys.modules and 'anthropic' not in sys.modules\n"
        "from openai.resources.chat.completions import Completions\n"
        "from anthropic.resources.messages import Messages\n"
        "from meterline.producers.llm import patching\n"
        "print(patching.is_patched(Completions, 'create'), "
        "patching.is_patched(Messages, 'create'))\n"
        "c.close(0)\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=root, timeout=120, env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "True"]


def test_init_instruments_the_installed_llm_clients_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from openai.resources.chat.completions import Completions

    from meterline.producers.llm import patching, uninstrument

    uninstrument()
    monkeypatch.setattr(config, "_instrumented", None)
    client = meterline.init("127.0.0.1:1", auto_instrument=False, flush_at_exit=False)
    try:
        assert not patching.is_patched(Completions, "create")
        meterline.init("127.0.0.1:1", flush_at_exit=False)
        assert patching.is_patched(Completions, "create")
        first = Completions.__dict__["create"]
        meterline.init("127.0.0.1:1", flush_at_exit=False)
        assert Completions.__dict__["create"] is first  # once per process
        assert getattr(first, patching.ORIGINAL).__qualname__ == "Completions.create"
    finally:
        uninstrument()
        monkeypatch.setattr(config, "_instrumented", None)
        meterline.producers.shutdown(1)
        client.close(1)

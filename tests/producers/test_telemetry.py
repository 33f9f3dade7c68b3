"""trajectory "TelemetryEvent": the frozen dataclass, push_events, TraceContext, upload_trace."""

from __future__ import annotations

import dataclasses
import logging
import re
from datetime import datetime

import pytest

from meterline.producers import telemetry as tj
from meterline.producers.sdk import MeterlineClient
from meterline.producers.telemetry import PushResult, TelemetryEvent
from meterline.producers.testing import MemorySink
from meterline.schemas import TelemetryEvent as WireTelemetry
from meterline.schemas import TrajectoryRecord


def test_only_event_type_and_session_id_are_required_and_defaults_are_documented() -> None:
    ev = TelemetryEvent(event_type="user.accept", session_id="s1")
    assert ev.properties == {} and ev.user_id is None and ev.trajectory_id is None
    assert ev.trace_id is None and ev.source == "sdk" and ev.metadata is None
    assert re.fullmatch(r"[0-9a-f]{32}", ev.event_id)
    assert datetime.fromisoformat(ev.timestamp).utcoffset() is not None  # aware, UTC
    assert TelemetryEvent(event_type="a", session_id="s").event_id != ev.event_id
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.event_type = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        TelemetryEvent(event_type="user.accept")  # type: ignore[call-arg]


def test_push_events_pushes_valid_and_skips_invalid_with_a_warning(
    client: MeterlineClient, sink: MemorySink, caplog: pytest.LogCaptureFixture
) -> None:
    events = [
        TelemetryEvent(event_type="user.accept", session_id="s1", properties={"n": 1},
                       user_id="u1", timestamp="2024-01-15T10:30:00Z"),
        TelemetryEvent(event_type="", session_id="s1"),  # invalid: empty event_type
        TelemetryEvent(event_type="tool.call", session_id=""),  # invalid: empty session
        TelemetryEvent(event_type="tool.call", session_id="s1", event_id="order-17"),
    ]
    with caplog.at_level(logging.WARNING):
        result = tj.push_events(events)
    assert isinstance(result, PushResult)
    assert (result.pushed, result.skipped, len(result.errors)) == (2, 2, 2)
    assert "event 1" in result.errors[0] and "event_type" in result.errors[0]
    assert "event 2" in result.errors[1] and "session_id" in result.errors[1]
    assert sum("skipped invalid event" in r.message for r in caplog.records) == 2
    first, second = sink.of_type(WireTelemetry)
    assert first.event_type == "user.accept" and first.user_id == "u1"
    assert first.project == "unit" and first.timestamp.isoformat() == "2024-01-15T10:30:00+00:00"
    assert second.event_id == "order-17"  # the caller's idempotency key is kept


def test_push_events_chunks_and_retries_transient_failures(
    client: MeterlineClient, sink: MemorySink
) -> None:
    events = [TelemetryEvent(event_type="tool.call", session_id="s") for _ in range(5)]
    sink.fail_deliveries(2)
    sink.refuse_sends(1)
    result = tj.push_events(events, organization_id="org-1", chunk_size=2, max_retries=3)
    assert result == PushResult(pushed=5, skipped=0, errors=[])
    assert {e.event_id for e in sink.of_type(WireTelemetry)} == {e.event_id for e in events}


def test_push_events_reports_events_still_failing_after_max_retries(
    client: MeterlineClient, sink: MemorySink
) -> None:
    events = [TelemetryEvent(event_type="tool.call", session_id="s") for _ in range(3)]
    sink.fail_deliveries(2)
    result = tj.push_events(events, max_retries=0)
    assert (result.pushed, result.skipped, len(result.errors)) == (1, 0, 2)
    assert "not delivered after 0 retries" in result.errors[0]
    assert client.stats.failed == 2


def test_trace_context_event_inherits_trace_id_and_upload_trace_sends_both(
    client: MeterlineClient, sink: MemorySink
) -> None:
    with tj.trace(user_id="u1", metadata={"password": "hunter2"}) as trace:
        a = trace.event("user.accept", {"suggestion": 3})
        b = trace.event("tool.call", session_id="custom-session")
    assert a.trace_id == trace.trace_id and a.session_id == trace.trace_id
    assert b.trace_id == trace.trace_id and b.session_id == "custom-session"
    assert a.user_id == "u1"
    result = tj.upload_trace(trace)
    assert result == PushResult(pushed=2, skipped=0, errors=[])
    (traj,) = sink.of_type(TrajectoryRecord)
    assert traj.trace_id == trace.trace_id and traj.status == "success"
    assert traj.metadata == {"password": "[REDACTED]"} and traj.ended_at is not None
    assert [e.trace_id for e in sink.of_type(WireTelemetry)] == [trace.trace_id] * 2
    assert sink.messages[0][0] == sink.topics.trajectories  # trajectory first


def test_secrets_in_properties_and_metadata_never_reach_the_sink(
    client: MeterlineClient, sink: MemorySink
) -> None:
    ev = TelemetryEvent(event_type="tool.call", session_id="s",
                        properties={"auth": {"Authorization": "Bearer abcdef"}},
                        metadata={"api_key": "sk-abcdefghijklmnop", "card": "4111 1111 1111 1111"})
    assert tj.push_events([ev]).pushed == 1
    raw = sink.messages[0][2]
    assert b"sk-abcdefghijklmnop" not in raw and b"abcdef\"" not in raw
    assert b"4111" not in raw

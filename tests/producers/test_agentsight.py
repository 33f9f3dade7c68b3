"""The AgentSight ``track_action`` document's examples, run as written on a ``tracker``."""

from __future__ import annotations

import re
from pathlib import Path

from meterline.producers.agentsight import AgentSightTracker, track_action
from meterline.producers.sdk import MeterlineClient
from meterline.producers.testing import MemorySink
from meterline.schemas import ActionEvent
from tests.producers.fixtures import flushed

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def test_documented_examples_run_unchanged_and_return_the_documented_shape(
    client: MeterlineClient, sink: MemorySink
) -> None:
    tracker = AgentSightTracker(client)
    # --- from the document, unchanged ---
    r1 = tracker.track_action(
        action_name="calculator_multiply",
        started_at="2024-01-15T10:30:00Z",
        ended_at="2024-01-15T10:30:00.050Z",
        duration_ms=50,
        tools_used={
            "function": "multiply",
            "parameters": {"a": 12, "b": 5}
        },
        response="60",
        conversation_id="math_help_123"
    )
    r2 = tracker.track_action(
        action_name="weather_lookup",
        duration_ms=800,
        tools_used={
            "api": "OpenWeatherMap",
            "location": "San Francisco, CA",
            "parameters": {"units": "metric"}
        },
        response="Temperature: 18°C, Conditions: Sunny",
        metadata={
            "location_query": "San Francisco",
            "units": "celsius"
        }
    )
    r3 = tracker.track_action(
        action_name="database_search",
        started_at="2024-01-15T10:30:00Z",
        ended_at="2024-01-15T10:30:00.200Z",
        duration_ms=200,
        tools_used={
            "database": "user_orders",
            "query_type": "SELECT",
            "filters": {"user_id": "123", "status": "active"}
        },
        response="Found 3 active orders",
        conversation_id="order_inquiry_456"
    )
    # --- end of the document's code ---
    for r, name in ((r1, "calculator_multiply"), (r2, "weather_lookup"), (r3, "database_search")):
        assert set(r) == {"status", "conversation_id", "timestamp", "action_name", "message"}
        assert r["status"] == "success"
        assert r["action_name"] == name
        assert r["message"] == "Action tracked successfully"
        assert ISO_Z.match(r["timestamp"]), r["timestamp"]
    assert r1["conversation_id"] == "math_help_123"
    assert r3["conversation_id"] == "order_inquiry_456"
    assert isinstance(r2["conversation_id"], str) and len(r2["conversation_id"]) >= 16

    events = {e.name: e for e in flushed(client, sink).of_type(ActionEvent)}
    assert set(events) == {"calculator_multiply", "weather_lookup", "database_search"}
    calc = events["calculator_multiply"]
    assert calc.session_id == "math_help_123" and calc.duration_ms == 50
    assert calc.started_at is not None
    assert calc.started_at.isoformat() == "2024-01-15T10:30:00+00:00"
    assert calc.ended_at is not None and calc.ended_at.microsecond == 50_000
    assert calc.properties["tools_used"]["parameters"] == {"a": 12, "b": 5}
    assert calc.properties["response"] == "60"
    assert calc.project == "unit" and calc.source == "agentsight" and calc.status == "success"
    assert events["weather_lookup"].session_id == r2["conversation_id"]
    assert events["weather_lookup"].metadata == {"location_query": "San Francisco",
                                                 "units": "celsius"}


def test_error_msg_marks_the_action_failed(client: MeterlineClient, sink: MemorySink) -> None:
    tracker = AgentSightTracker(client)
    r = tracker.track_action("weather_lookup", error_msg="upstream 503", conversation_id="c1")
    assert r["status"] == "success"  # tracked successfully; the action itself failed
    (ev,) = flushed(client, sink).records
    assert isinstance(ev, ActionEvent)
    assert ev.status == "error" and ev.error_message == "upstream 503"


def test_invalid_arguments_return_an_error_response_and_send_nothing(
    client: MeterlineClient, sink: MemorySink
) -> None:
    tracker = AgentSightTracker(client)
    bad = [
        tracker.track_action(""),
        tracker.track_action("x", started_at="yesterday"),
        tracker.track_action("x", duration_ms=-1),
    ]
    assert [r["status"] for r in bad] == ["error"] * 3
    assert "action_name" in bad[0]["message"]
    assert "started_at" in bad[1]["message"]
    assert "duration_ms" in bad[2]["message"]
    assert flushed(client, sink).records == []


def test_a_full_queue_is_reported_in_the_return_value(sink: MemorySink) -> None:
    c = MeterlineClient(sink, max_queue=1, flush_at_exit=False)
    c._closed = True  # the sender thread stops; nothing drains the queue
    c._thread.join(2)
    c._closed = False
    tracker = AgentSightTracker(c)
    assert tracker.track_action("a")["status"] == "success"
    r = tracker.track_action("b")
    assert r["status"] == "error" and "dropped" in r["message"]
    assert c.stats.dropped == 1


def test_display_names_from_a_mapping_and_from_yaml(
    client: MeterlineClient, sink: MemorySink, tmp_path: Path
) -> None:
    cfg = tmp_path / "names.yaml"
    cfg.write_text("display_names:\n  calculator_add: Calculator (add)\n  db: Database\n")
    tracker = AgentSightTracker(client, display_names_file=cfg, display_names={"db": "DB"})
    assert tracker.display_name("calculator_add") == "Calculator (add)"
    assert tracker.display_name("db") == "DB"  # the mapping overrides the file
    assert tracker.display_name("other") == "other"
    tracker.track_action("calculator_add")
    (ev,) = flushed(client, sink).records
    assert isinstance(ev, ActionEvent) and ev.properties["display_name"] == "Calculator (add)"


def test_module_level_track_action_and_idempotency_key(
    client: MeterlineClient, sink: MemorySink
) -> None:
    a = track_action("calculator_add", conversation_id="c", idempotency_key="req-1")
    b = track_action("calculator_add", conversation_id="c", idempotency_key="req-1")
    assert a["status"] == b["status"] == "success"
    ids = [e.event_id for e in flushed(client, sink).of_type(ActionEvent)]
    assert len(ids) == 2 and ids[0] == ids[1]


def test_secrets_in_metadata_and_tools_are_redacted(
    client: MeterlineClient, sink: MemorySink
) -> None:
    AgentSightTracker(client).track_action(
        "call_api", tools_used={"headers": {"Authorization": "Bearer abc.def"}},
        response="used key sk-live1234567890abcdef", metadata={"api_key": "sk-secret-123456789"},
    )
    (ev,) = flushed(client, sink).records
    raw = sink.messages[0][2]
    assert b"sk-" not in raw and b"abc.def" not in raw
    assert isinstance(ev, ActionEvent) and ev.metadata == {"api_key": "[REDACTED]"}

"""valmi "Collecting Actions": the ``action`` context manager and explicit outcomes."""

from __future__ import annotations

import asyncio
import time

import pytest

from meterline.producers.sdk import MeterlineClient
from meterline.producers.testing import MemorySink
from meterline.producers.valmi import action, send_outcome
from meterline.schemas import ActionEvent, TelemetryEvent
from tests.producers.fixtures import flushed


def test_action_records_who_status_and_duration(client: MeterlineClient, sink: MemorySink) -> None:
    with action("object_detection", user_id="user_123") as act:
        time.sleep(0.01)
        act.properties["objects"] = 3
    with action("data_extraction", anonymous_id="anon_456", trace_id="t1"):
        pass
    det, ext = flushed(client, sink).of_type(ActionEvent)
    assert det.name == "object_detection" and det.user_id == "user_123"
    assert det.anonymous_id is None and det.status == "success" and det.error_message is None
    assert det.duration_ms is not None and det.duration_ms >= 10
    assert det.started_at is not None and det.ended_at is not None
    assert det.ended_at > det.started_at and det.properties == {"objects": 3}
    assert det.project == "unit" and det.source == "valmi" and det.kind == "action"
    assert det.event_id == act.event_id
    assert ext.anonymous_id == "anon_456" and ext.user_id is None and ext.trace_id == "t1"


def test_an_exception_is_captured_and_re_raised(client: MeterlineClient, sink: MemorySink) -> None:
    with pytest.raises(ValueError, match="bad invoice"), action("object_detection", user_id="u"):
        raise ValueError("bad invoice")
    (ev,) = flushed(client, sink).of_type(ActionEvent)
    assert ev.status == "error" and ev.error_type == "ValueError"
    assert ev.error_message == "bad invoice"


def test_fail_marks_an_action_failed_without_raising(
    client: MeterlineClient, sink: MemorySink
) -> None:
    with action("classification", user_id="u") as act:
        act.fail("low confidence")
    (ev,) = flushed(client, sink).of_type(ActionEvent)
    assert ev.status == "error" and ev.error_message == "low confidence"


def test_async_with_and_secret_redaction(client: MeterlineClient, sink: MemorySink) -> None:
    async def run() -> None:
        async with action("api_call", user_id="u", metadata={"api_key": "sk-abcdefgh12345"}):
            await asyncio.sleep(0)

    asyncio.run(run())
    (ev,) = flushed(client, sink).of_type(ActionEvent)
    assert ev.metadata == {"api_key": "[REDACTED]"}
    assert b"sk-abcdefgh12345" not in sink.messages[0][2]


def test_idempotency_key_gives_a_stable_event_id(client: MeterlineClient, sink: MemorySink) -> None:
    for _ in range(2):
        with action("object_detection", user_id="u", idempotency_key="invoice-42"):
            pass
    a, b = flushed(client, sink).of_type(ActionEvent)
    assert a.event_id == b.event_id


def test_explicit_outcome_is_a_telemetry_event(client: MeterlineClient, sink: MemorySink) -> None:
    eid = send_outcome("invoice_processed", user_id="user_123", trace_id="t9", value=1.0,
                       idempotency_key="invoice-42")
    assert eid == send_outcome("invoice_processed", idempotency_key="invoice-42")
    first, _ = flushed(client, sink).of_type(TelemetryEvent)
    assert first.event_id == eid
    assert first.event_type == "outcome.invoice_processed"
    assert first.properties == {"outcome": "invoice_processed", "status": "success", "value": 1.0}
    assert first.user_id == "user_123" and first.trace_id == "t9" and first.session_id == "t9"


def test_empty_names_are_rejected_in_strict_mode(
    client: MeterlineClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METERLINE_STRICT", "1")
    with pytest.raises(ValueError):
        action("")
    with pytest.raises(ValueError):
        send_outcome("")

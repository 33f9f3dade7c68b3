"""Record limits on the sender thread: oversized records rejected, attribute explosions
truncated by the documented rule, records within the limits untouched."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from meterline.producers import telemetry as tj
from meterline.producers.errors import RecordTooLarge
from meterline.producers.limits import TOO_DEEP, TRUNCATED, TRUNCATION_KEY, Limits
from meterline.producers.sdk import MeterlineClient
from meterline.producers.testing import MemorySink
from meterline.schemas import ActionEvent, RawRecord, Status, TelemetryEvent, encode
from tests.producers.fixtures import flushed


def _client(sink: MemorySink, errors: list[tuple[str, BaseException | None]] | None = None,
            **limits: Any) -> MeterlineClient:
    on_error = None if errors is None else (lambda m, e: errors.append((m, e)))
    return MeterlineClient(sink, project="unit", limits=Limits(**limits), on_error=on_error,
                           flush_at_exit=False)


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"next": value}
    return value


def test_an_oversized_record_is_not_sent_and_is_counted_logged_and_reported(
    sink: MemorySink, caplog: pytest.LogCaptureFixture
) -> None:
    errors: list[tuple[str, BaseException | None]] = []
    c = _client(sink, errors)
    # 128 keys survive truncation, each 8,192 chars: still over the default 1,000,000 bytes
    huge = {f"k{i:03}": "x" * 9000 for i in range(200)}
    with caplog.at_level(logging.WARNING, logger="producers"):
        assert c.record(ActionEvent(event_id="big-1", name="step", properties=huge))
        assert c.record(ActionEvent(event_id="small-1", name="step"))
        flushed(c, sink)
    assert [r.event_id for r in sink.of_type(ActionEvent)] == ["small-1"]
    assert c.stats.oversized == 1 and c.stats.sent == 1 and c.stats.delivered == 1
    (message, exc), = errors
    assert isinstance(exc, RecordTooLarge) and exc.limit == 1_000_000
    assert "big-1" in message and f"{exc.size} bytes" in message and "1000000-byte" in message
    assert exc.size > 1_000_000
    assert c.stats.last_error == message
    assert any("big-1" in r.getMessage() for r in caplog.records)
    c.close(5)


def test_the_size_limit_is_exact_and_configurable(sink: MemorySink) -> None:
    event = ActionEvent(event_id="e1", name="step", project="unit",
                        properties={"text": "é\n" * 300})
    size = len(encode(event))
    at_limit = _client(sink, max_record_bytes=size)
    at_limit.record(event)
    flushed(at_limit, sink)
    errors: list[tuple[str, BaseException | None]] = []
    below = _client(MemorySink(), errors, max_record_bytes=size - 1)
    below.record(event)
    assert below.flush(5) == 0
    assert len(sink.records) == 1 and at_limit.stats.oversized == 0
    assert below.stats.oversized == 1 and f"is {size} bytes" in errors[0][0]
    at_limit.close(5)
    below.close(5)


def test_huge_properties_and_metadata_are_truncated_by_the_rule_and_counted(
    client: MeterlineClient, sink: MemorySink
) -> None:
    props: dict[str, Any] = {f"p{i:03}": i for i in range(300)}
    props["p000"] = "y" * 20_000
    props["p001"] = list(range(500))
    props["p002"] = _nested(12)
    meta = {f"m{i:03}": "v" for i in range(130)}
    client.record(ActionEvent(event_id="e1", name="step", properties=props, metadata=meta))
    rec, = flushed(client, sink).of_type(ActionEvent)
    assert list(rec.properties) == [f"p{i:03}" for i in range(128)]  # first 128 keys kept
    assert rec.properties["p000"] == "y" * 8192 + TRUNCATED
    assert rec.properties["p001"] == list(range(128))
    level = rec.properties["p002"]
    for _ in range(6):  # properties is level 1; objects down to level 8 are kept
        level = level["next"]
    assert level == {"next": TOO_DEEP}
    assert rec.metadata[TRUNCATION_KEY] == {
        "dropped_keys": 300 - 128 + 130 - 128, "dropped_items": 500 - 128,
        "truncated_values": 1, "too_deep": 1,
    }
    assert len(rec.metadata) == 128 + 1  # the marker key comes on top of the limit
    assert client.stats.truncated == 1 and client.stats.oversized == 0


def test_limits_are_configurable_and_cover_error_message_and_trajectories(
    sink: MemorySink,
) -> None:
    c = _client(sink, max_attributes=2, max_value_chars=5, max_depth=1, marker="~")
    c.record(ActionEvent(event_id="e1", name="step", status=Status.ERROR,
                         error_message="a long failure message",
                         properties={"a": "abcdefgh", "b": {"c": 1}, "c": 3}))
    c.record(tj.TraceContext(trace_id="t1", metadata={"x": [1], "y": "ok"}).to_record("unit"))
    flushed(c, sink)
    event, traj = sink.records
    assert isinstance(event, ActionEvent)
    assert event.error_message == "a lon~"
    assert event.properties == {"a": "abcde~", "b": TOO_DEEP}
    assert event.metadata[TRUNCATION_KEY] == {
        "dropped_keys": 1, "dropped_items": 0, "truncated_values": 2, "too_deep": 1}
    assert traj.metadata == {"x": TOO_DEEP, "y": "ok",
                             TRUNCATION_KEY: {"dropped_keys": 0, "dropped_items": 0,
                                              "truncated_values": 0, "too_deep": 1}}
    assert c.stats.truncated == 2
    c.close(5)


def test_records_within_the_limits_are_byte_identical(
    client: MeterlineClient, sink: MemorySink
) -> None:
    events: list[RawRecord] = [
        ActionEvent(event_id="e1", name="weather_lookup", project="unit", duration_ms=800,
                    properties={"tools_used": {"api": "OpenWeatherMap", "units": ["metric"]},
                                "response": "Temperature: 18C", "n": 3, "ok": True,
                                "deep": _nested(7), "edge": "z" * 8192},
                    metadata={f"m{i}": i / 3 for i in range(128)}),
        TelemetryEvent(event_id="t1", event_type="user.accept", project="unit",
                       properties={"unicode": "naïve ☃\t\"quoted\""}),
    ]
    for event in events:
        client.record(event)
    flushed(client, sink)
    assert [value for _, _, value in sink.messages] == [encode(e) for e in events]
    assert client.stats.truncated == 0 and client.stats.oversized == 0


def test_push_events_reports_an_oversized_event_synchronously(sink: MemorySink) -> None:
    c = _client(sink, max_record_bytes=2000)
    result = tj.push_events([tj.TelemetryEvent(event_type="a", session_id="s", event_id="fits"),
                             tj.TelemetryEvent(event_type="a", session_id="s", event_id="too-big",
                                               properties={"t": "x" * 3000})], client=c)
    assert result.pushed == 1 and result.skipped == 1
    assert re.search(r"too-big.*is \d+ bytes serialised, over the 2000-byte limit",
                     result.errors[0])
    assert c.stats.oversized == 1
    c.close(5)


def test_limits_reject_nonsense_values() -> None:
    with pytest.raises(ValueError, match="max_depth"):
        Limits(max_depth=0)

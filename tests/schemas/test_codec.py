from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from schemas import (
    ActionEvent,
    ActionKind,
    DeadLetter,
    EnrichedEvent,
    InvalidRecord,
    TelemetryEvent,
    TrajectoryRecord,
    UnsupportedSchemaVersion,
    decode_as,
    decode_raw,
    encode,
)


def test_each_raw_record_type_round_trips() -> None:
    records = [
        ActionEvent(
            event_id="e1",
            name="gen",
            kind=ActionKind.LLM_CALL,
            model="gpt-4o",
            input_tokens=10,
            output_tokens=5,
            cost_usd=0.001,
            trace_id="t",
        ),
        TelemetryEvent(event_id="e2", event_type="user.accept", session_id="s"),
        TrajectoryRecord(trace_id="t", user_id="u"),
    ]
    for record in records:
        assert decode_raw(encode(record)) == record


def test_routing_key_is_trace_id_else_event_id() -> None:
    assert ActionEvent(event_id="e", name="a", trace_id="t").routing_key == "t"
    assert ActionEvent(event_id="e", name="a").routing_key == "e"


@pytest.mark.parametrize(
    ("payload", "error_type", "reason"),
    [
        (b"{", "invalid_json", "Invalid JSON"),
        (b"\xff\xfe\x00", "invalid_json", "Invalid JSON"),
        (b'{"type": "action", "name": "x"}', "invalid_record", "event_id: Field required"),
        (b'{"name": "x", "event_id": "e"}', "invalid_record", "type: missing"),
        (b'{"type": "nope", "event_id": "e"}', "invalid_record", "type:"),
        (
            b'{"type": "action", "event_id": "e", "name": "x", "input_tokens": "many"}',
            "invalid_record",
            "input_tokens: Input should be a valid integer",
        ),
        (
            b'{"type": "action", "event_id": "e", "name": "x", "surprise": 1}',
            "invalid_record",
            "surprise: Extra inputs are not permitted",
        ),
        (
            b'{"type": "action", "event_id": "e", "name": "x", "kind": "llm_call"}',
            "invalid_record",
            "model: required when kind is 'llm_call'",
        ),
        (
            b'{"type": "action", "event_id": "  ", "name": "x"}',
            "invalid_record",
            "event_id: String should have at least 1 character",
        ),
    ],
)
def test_invalid_records_name_the_field(payload: bytes, error_type: str, reason: str) -> None:
    with pytest.raises(InvalidRecord) as info:
        decode_raw(payload)
    assert info.value.error_type == error_type
    assert reason in info.value.reason


def test_newer_schema_version_is_reported_as_such() -> None:
    payload = b'{"type": "action", "event_id": "e", "name": "x", "schema_version": 9, "new": 1}'
    with pytest.raises(UnsupportedSchemaVersion) as info:
        decode_raw(payload)
    assert info.value.error_type == "unsupported_schema_version"
    assert "schema_version: 9" in info.value.reason


def test_timestamps_are_normalised_to_utc() -> None:
    naive = ActionEvent(event_id="e", name="a", timestamp=datetime(2026, 1, 1, 12, 0))
    assert naive.timestamp == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    plus2 = timezone(timedelta(hours=2))
    aware = ActionEvent(event_id="e", name="a", timestamp=datetime(2026, 1, 1, 14, 0, tzinfo=plus2))
    assert aware.timestamp == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert aware.timestamp.tzinfo == UTC


def test_dead_letter_keeps_the_original_bytes_exactly() -> None:
    original = b"\xff\x00not json\n"
    letter = DeadLetter(source_topic="t", partition=1, offset=7, payload=original, reason="r")
    decoded = decode_as(DeadLetter, encode(letter))
    assert decoded.payload == original
    assert decoded.dead_letter_id == "t/1/7"


def test_enriched_event_carries_either_event_type() -> None:
    tel = TelemetryEvent(event_id="e", event_type="user.accept", session_id="s")
    enriched = EnrichedEvent(event=tel)
    back = decode_as(EnrichedEvent, encode(enriched))
    assert isinstance(back.event, TelemetryEvent)
    assert not back.joined

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from meterline.schemas import (
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
        # numbers the ClickHouse columns cannot hold (UInt64 tokens, Decimal(38, 12) costs)
        (
            b'{"type": "action", "event_id": "e", "name": "x", "input_tokens": %d}' % 2**64,
            "invalid_record",
            "input_tokens: Input should be less than or equal to 18446744073709551615",
        ),
        (
            b'{"type": "action", "event_id": "e", "name": "x", "cost_usd": 1e30}',
            "invalid_record",
            "cost_usd: Input should be less than or equal to 1000000000000",
        ),
        (
            b'{"type": "action", "event_id": "e", "name": "x", "cost_usd": Infinity}',
            "invalid_record",
            "cost_usd: Input should be a finite number",
        ),
        (
            b'{"type": "action", "event_id": "e", "name": "x", "duration_ms": Infinity}',
            "invalid_record",
            "duration_ms: Input should be a finite number",
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


def _action(**fields: object) -> bytes:
    return json.dumps({"type": "action", "name": "x", "event_id": "e", **fields}).encode()


T0 = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (1_700_000_000, T0),  # epoch seconds
        (1_700_000_000.5, T0 + timedelta(milliseconds=500)),
        (1_700_000_000_123, T0 + timedelta(milliseconds=123)),  # milliseconds
        (1_700_000_000_123_456, T0 + timedelta(microseconds=123_456)),  # microseconds
        (1_700_000_000_123_456_000, T0 + timedelta(microseconds=123_456)),  # nanoseconds
        ("1700000000", T0),  # digits in a string
        ("2023-11-14T22:13:20", T0),  # naive ISO: UTC
        ("2023-11-14T23:13:20+01:00", T0),
        ("2023-11-14T22:13:20Z", T0),
    ],
)
def test_wire_timestamps_are_normalised_by_a_documented_rule(
    wire: object, expected: datetime
) -> None:
    record = decode_raw(_action(timestamp=wire))
    assert record.timestamp == expected and record.timestamp.tzinfo == UTC


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (True, "timestamp: Value error, a boolean is not a timestamp"),
        (1e30, "timestamp: Value error, epoch number 1e+30 is out of range"),
        ("yesterday", "timestamp: Input should be a valid datetime"),
        # outside years 1-9999 once in UTC: an invalid field, not an OverflowError (which
        # no caller expects: it crash-looped the processor on that record)
        ("0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00+01:00 is out of range in UTC"),
        ("9999-12-31T23:59:59-01:00", "9999-12-31T23:59:59-01:00 is out of range in UTC"),
    ],
)
def test_unreadable_timestamps_are_invalid(wire: object, reason: str) -> None:
    with pytest.raises(InvalidRecord) as info:
        decode_raw(_action(timestamp=wire))
    assert reason in info.value.reason


def test_a_record_without_timestamp_is_not_given_ingestion_time() -> None:
    with pytest.raises(InvalidRecord) as info:
        decode_raw(b'{"type": "telemetry", "event_id": "e", "event_type": "x"}')
    assert info.value.reason.startswith("timestamp: Field required")


@pytest.mark.parametrize("field", ["event_id", "trace_id", "user_id"])
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "String should have at least 1 character"),
        (" \t ", "String should have at least 1 character"),
        ("x" * 257, "String should have at most 256 characters"),
        ("a\x00b", "must not contain control characters"),
        ("a\nb", "must not contain control characters"),
        ("a\x7fb", "must not contain control characters"),
        (42, "Input should be a valid string"),
        (["e"], "Input should be a valid string"),
        (None, "Input should be a valid string"),
    ],
)
def test_malformed_ids_are_invalid_and_named(field: str, value: object, reason: str) -> None:
    if field != "event_id" and value is None:
        return  # trace_id / user_id are optional: null is allowed
    with pytest.raises(InvalidRecord) as info:
        decode_raw(_action(timestamp=1_700_000_000, **{field: value}))
    assert info.value.error_type == "invalid_record"
    assert f"{field}: {reason}" in info.value.reason


def test_ids_keep_inner_spaces_and_unicode() -> None:
    record = decode_raw(_action(timestamp=1_700_000_000, event_id=" ü id ", user_id="用户 1"))
    assert (record.event_id, record.user_id) == ("ü id", "用户 1")


def test_an_integer_beyond_64_bits_in_a_payload_is_refused_where_the_record_is_built() -> None:
    """The SDK learns it when building the record, not the processor when parking it."""
    from pydantic import ValidationError

    from meterline.schemas import ActionEvent, TrajectoryRecord

    with pytest.raises(ValidationError, match=r"a\.0\.b: integer outside the 64-bit range"):
        ActionEvent(event_id="e", name="n", properties={"a": [{"b": 2**64}]})
    with pytest.raises(ValidationError, match=r"n: integer outside"):
        TrajectoryRecord(trace_id="t", metadata={"n": -(2**63) - 1})
    edge = {"a": (2**64 - 1, -(2**63)), "b": True, "c": 1.5e300}
    assert ActionEvent(event_id="e", name="n", metadata=edge).metadata == edge

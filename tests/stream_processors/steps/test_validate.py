from __future__ import annotations

from datetime import UTC, datetime

import pytest

from meterline.schemas import ActionEvent, encode
from meterline.schemas.fast_decode import to_model
from meterline.stream_processors.errors import InvalidMessage
from meterline.stream_processors.steps.validate import dead_letter_for, validate

WHERE = {"topic": "raw", "partition": 2, "offset": 41}
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_valid_record_is_parsed() -> None:
    ev = ActionEvent(event_id="e", name="a")
    assert to_model(validate(encode(ev), **WHERE)) == ev  # msgspec's fast path: same values


@pytest.mark.parametrize(
    ("value", "error_type"),
    [(None, "empty"), (b"", "empty"), (b"x" * 2_000, "oversized"), (b"nope", "invalid_json")],
)
def test_invalid_records_raise_with_their_origin(value: bytes | None, error_type: str) -> None:
    with pytest.raises(InvalidMessage) as info:
        validate(value, max_bytes=1_000, **WHERE)
    exc = info.value
    assert (exc.topic, exc.partition, exc.offset, exc.error_type) == ("raw", 2, 41, error_type)


def test_dead_letter_points_back_at_the_record() -> None:
    with pytest.raises(InvalidMessage) as info:
        validate(b'{"type": "action"}', **WHERE)
    letter = dead_letter_for(info.value, b"key", b'{"type": "action"}')
    assert letter.payload == b'{"type": "action"}'
    assert letter.key == b"key"
    assert (letter.source_topic, letter.partition, letter.offset) == ("raw", 2, 41)
    assert "event_id: Field required" in letter.reason


def test_an_oversized_records_dead_letter_keeps_its_first_bytes_and_says_how_large() -> None:
    big = b"{" + b"x" * 1_500_000
    with pytest.raises(InvalidMessage) as info:
        validate(big, **WHERE)
    letter = dead_letter_for(info.value, b"k", big)
    assert letter.payload == big[:1_000_000] and letter.error_type == "oversized"
    assert "the first 1000000 of 1500001 bytes" in letter.reason
    assert len(encode(letter)) < 8 * 1_048_576  # fits one output message


def test_an_unexpected_error_in_validation_dead_letters_the_record_instead_of_raising(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bug in validation must not crash-loop the worker on one record: it is dead-lettered
    (a project whose records all fail is quarantined, never the worker stopped)."""
    from meterline.schemas import validation as step

    def broken(_value: bytes) -> None:
        raise OverflowError("date value out of range")

    monkeypatch.setattr(step, "decode_raw_fast", broken)
    with pytest.raises(InvalidMessage) as info:
        validate(encode(ActionEvent(event_id="e", name="a")), **WHERE)
    exc = info.value
    assert exc.error_type == step.UNEXPECTED_ERROR
    assert exc.reason == "unexpected OverflowError while validating: date value out of range"
    assert (exc.topic, exc.partition, exc.offset) == ("raw", 2, 41)


@pytest.mark.parametrize("number", [2**64, -(2**63) - 1, 10**30])
@pytest.mark.parametrize("where", ["properties", "metadata"])
def test_an_integer_beyond_64_bits_is_dead_lettered_naming_its_key(number: int, where: str) -> None:
    """Such an integer passed validation and then crashed the worker on every replay when
    its event was parked (orjson cannot write it); now the record is refused up front."""
    value = (
        b'{"type":"action","event_id":"e","name":"a","trace_id":"t",'
        b'"timestamp":"2026-01-01T00:00:00Z","%s":{"n":[1,{"deep":%d}]}}'
        % (where.encode(), number)
    )
    with pytest.raises(InvalidMessage) as info:
        validate(value, **WHERE)
    assert info.value.error_type == "invalid_record"
    assert info.value.reason.startswith(f"{where}: Value error, n.1.deep: integer outside")
    edge = value.replace(b"%d" % number, b"%d" % (2**64 - 1 if number > 0 else -(2**63)))
    assert validate(edge, **WHERE).properties is not None


# event-time range (the rule: meterline.schemas.validation.check_time)
CLOCK_WHERE = {"topic": "raw", "partition": 0, "offset": 9}


def test_milliseconds_sent_as_seconds_field_are_dead_lettered_with_the_original() -> None:
    # an epoch in milliseconds divided wrongly (x1000 too big as seconds, then as ms ...):
    # here 1.7e10 seconds, the year 2508
    raw = b'{"type": "action", "event_id": "e", "name": "a", "timestamp": 17000000000}'
    with pytest.raises(InvalidMessage) as info:
        validate(raw, now=NOW, **CLOCK_WHERE)
    assert info.value.error_type == "timestamp_out_of_range"
    letter = dead_letter_for(info.value, b"k", raw)
    assert letter.payload == raw and letter.reason.startswith("timestamp: 2508-")


def test_validate_accepts_in_range_epochs() -> None:
    ev = ActionEvent(event_id="e", name="a", timestamp=NOW)
    assert to_model(validate(encode(ev), now=NOW, **CLOCK_WHERE)) == ev
    millis = int(NOW.timestamp() * 1000)
    raw = f'{{"type": "action", "event_id": "e", "name": "a", "timestamp": {millis}}}'
    assert validate(raw.encode(), now=NOW, **CLOCK_WHERE).timestamp == NOW

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from meterline.schemas import ActionEvent, TelemetryEvent, TrajectoryRecord, encode
from meterline.schemas.fast_decode import to_model
from meterline.stream_processors.errors import InvalidMessage
from meterline.stream_processors.steps.clock import TimeBounds, TimestampOutOfRange, check_time
from meterline.stream_processors.steps.validate import dead_letter_for, validate

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
WHERE = {"topic": "raw", "partition": 0, "offset": 9}


def test_times_within_bounds_pass() -> None:
    for ts in (NOW, NOW + timedelta(hours=23, minutes=59), datetime(2000, 1, 1, tzinfo=UTC)):
        check_time(ActionEvent(event_id="e", name="a", timestamp=ts), TimeBounds(), NOW)


@pytest.mark.parametrize(
    ("record", "field", "says"),
    [
        (ActionEvent(event_id="e", name="a", timestamp=NOW + timedelta(hours=25)),
         "timestamp", "25.0 h ahead of processing time (limit 24.0 h)"),
        (TelemetryEvent(event_id="e", event_type="t", timestamp=datetime(1970, 1, 1, tzinfo=UTC)),
         "timestamp", "before 2000-01-01"),
        (ActionEvent(event_id="e", name="a", timestamp=NOW, ended_at=NOW + timedelta(days=400)),
         "ended_at", "ahead of processing time"),
        (TrajectoryRecord(trace_id="t", timestamp=NOW, started_at=datetime(1999, 12, 31)),
         "started_at", "before 2000-01-01"),
    ],
)
def test_out_of_range_times_name_the_field(record: object, field: str, says: str) -> None:
    with pytest.raises(TimestampOutOfRange) as info:
        check_time(record, TimeBounds(), NOW)  # type: ignore[arg-type]
    assert str(info.value).startswith(f"{field}: ") and says in str(info.value)


def test_the_future_bound_is_relative_to_processing_time_and_configurable() -> None:
    ev = ActionEvent(event_id="e", name="a", timestamp=NOW + timedelta(hours=2))
    check_time(ev, TimeBounds(), NOW)
    with pytest.raises(TimestampOutOfRange):
        check_time(ev, TimeBounds(max_future=timedelta(hours=1)), NOW)
    check_time(ev, TimeBounds(max_future=timedelta(hours=1)), NOW + timedelta(hours=1))


def test_milliseconds_sent_as_seconds_field_are_dead_lettered_with_the_original() -> None:
    # an epoch in milliseconds divided wrongly (x1000 too big as seconds, then as ms ...):
    # here 1.7e10 seconds, the year 2508
    raw = b'{"type": "action", "event_id": "e", "name": "a", "timestamp": 17000000000}'
    with pytest.raises(InvalidMessage) as info:
        validate(raw, now=NOW, **WHERE)
    assert info.value.error_type == "timestamp_out_of_range"
    letter = dead_letter_for(info.value, b"k", raw)
    assert letter.payload == raw and letter.reason.startswith("timestamp: 2508-")


def test_validate_accepts_in_range_epochs() -> None:
    ev = ActionEvent(event_id="e", name="a", timestamp=NOW)
    assert to_model(validate(encode(ev), now=NOW, **WHERE)) == ev
    millis = int(NOW.timestamp() * 1000)
    raw = f'{{"type": "action", "event_id": "e", "name": "a", "timestamp": {millis}}}'
    assert validate(raw.encode(), now=NOW, **WHERE).timestamp == NOW


@pytest.mark.parametrize("field", ["timestamp", "started_at", "ended_at"])
def test_the_fast_path_s_events_are_held_to_the_same_bounds(field: str) -> None:
    """Events decoded by msgspec (``meterline.schemas.fast_decode``) take the same check; the edges
    of
    the range pass, one microsecond beyond fails naming the field."""
    from meterline.schemas.fast_decode import decode_event

    def fast(at: datetime) -> object:
        times: dict[str, datetime] = {"timestamp": NOW, field: at}
        event = decode_event(encode(ActionEvent(event_id="e", name="a", **times)))
        assert event is not None
        return event

    latest, earliest = NOW + timedelta(hours=24), datetime(2000, 1, 1, tzinfo=UTC)
    for at in (latest, earliest):
        check_time(fast(at), TimeBounds(), NOW)  # type: ignore[arg-type]
    for at in (latest + timedelta(microseconds=1), earliest - timedelta(microseconds=1)):
        with pytest.raises(TimestampOutOfRange, match=f"^{field}: "):
            check_time(fast(at), TimeBounds(), NOW)  # type: ignore[arg-type]

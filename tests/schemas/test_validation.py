from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from meterline.schemas import ActionEvent, TelemetryEvent, TrajectoryRecord, encode
from meterline.schemas.validation import TimeBounds, TimestampOutOfRange, check_time

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


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

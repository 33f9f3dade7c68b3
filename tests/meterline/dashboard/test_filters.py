"""Filters: what the dashboard accepts from a query string, and its time buckets."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from meterline.dashboard.errors import BadRequest
from meterline.dashboard.filters import BUCKETS, Filters, floor, parse

Q = {"project": "acme", "from": "2026-11-01T00:00:00Z", "to": "2026-11-01T01:18:00Z"}


def test_a_valid_query_becomes_utc_filters_with_an_automatic_bucket() -> None:
    f = parse({**Q, "from": "2026-11-01T01:00:00+01:00"})
    assert f == Filters(
        project="acme",
        start=datetime(2026, 11, 1, tzinfo=UTC),
        end=datetime(2026, 11, 1, 1, 18, tzinfo=UTC),
        bucket="minute",
    )
    assert parse({**Q, "to": "2026-11-03T00:00:00"}).bucket == "hour"  # no offset: UTC
    assert parse({**Q, "to": "2027-06-01T00:00:00Z"}).bucket == "week"
    assert f.params() == {
        "project": "acme",
        "start": "2026-11-01 00:00:00.000000",
        "end": "2026-11-01 01:18:00.000000",
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"project": ""}, "project: required"),
        ({"project": "p" * 257}, "at most 256"),
        ({"from": "yesterday"}, "from: expected an ISO 8601"),
        ({"to": "2026-11-01T00:00:00Z"}, "to must be after from"),
        ({"to": "2031-01-01T00:00:00Z"}, "at most 3 years"),
        ({"bucket": "fortnight"}, "bucket: one of auto, minute"),
        ({"bucket": "minute", "to": "2026-12-01T00:00:00Z"}, "too many points"),
    ],
)
def test_bad_values_are_refused_with_a_message(change: dict[str, str], message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse({**Q, **change})


def test_bucket_starts_cover_the_period_without_gaps() -> None:
    f = parse({**Q, "from": "2026-10-30T12:00:00Z", "to": "2027-01-02T00:00:00Z",
               "bucket": "month"})  # fmt: skip
    assert [b.date().isoformat() for b in f.bucket_starts()] == [
        "2026-10-01", "2026-11-01", "2026-12-01", "2027-01-01",
    ]  # fmt: skip
    weeks = parse({**Q, "to": "2026-11-20T00:00:00Z", "bucket": "week"}).bucket_starts()
    assert [w.weekday() for w in weeks] == [0, 0, 0, 0]  # Mondays, the first before from
    assert weeks[0] == datetime(2026, 10, 26, tzinfo=UTC)
    assert len(parse(Q).bucket_starts()) == 78


def test_floor_of_fixed_width_buckets_is_aligned_to_the_epoch() -> None:
    t = datetime(2026, 11, 1, 13, 47, 59, 999_000, tzinfo=UTC)
    assert floor(t, "15min") == datetime(2026, 11, 1, 13, 45, tzinfo=UTC)
    assert floor(t, "6hour") == datetime(2026, 11, 1, 12, tzinfo=UTC)
    assert floor(t, "day") == datetime(2026, 11, 1, tzinfo=UTC)
    assert set(BUCKETS) >= {"minute", "hour", "day", "week", "month"}

"""The dashboard's filters (project, period, bucket), parsed and validated from a query string.

Every value that reaches SQL is either bound as a parameter (project, start, end) or chosen
from a fixed table here (the bucket expression): nothing from the request is interpolated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from meterline.dashboard.errors import BadRequest

#: bucket name -> (ClickHouse expression over ``{col}``, nominal width in seconds)
BUCKETS: dict[str, tuple[str, int]] = {
    "minute": ("toStartOfMinute({col})", 60),
    "5min": ("toStartOfInterval({col}, INTERVAL 5 MINUTE)", 300),
    "15min": ("toStartOfInterval({col}, INTERVAL 15 MINUTE)", 900),
    "hour": ("toStartOfHour({col})", 3_600),
    "6hour": ("toStartOfInterval({col}, INTERVAL 6 HOUR)", 21_600),
    "day": ("toDateTime(toStartOfDay({col}), 'UTC')", 86_400),
    "week": ("toDateTime(toMonday({col}), 'UTC')", 7 * 86_400),
    "month": ("toDateTime(toStartOfMonth({col}), 'UTC')", 31 * 86_400),
}
#: ``auto`` picks the finest bucket that keeps a chart at or under this many points.
MAX_POINTS = 120
MAX_SPAN = timedelta(days=3 * 366)
MAX_PROJECT_LEN = 256


@dataclass(frozen=True)
class Filters:
    """One panel request: ``[start, end)`` in UTC, one project, a time bucket."""

    project: str
    start: datetime
    end: datetime
    bucket: str

    def bucket_sql(self, column: str) -> str:
        """The bucket expression over ``column`` (a trusted column name, never user input)."""
        return BUCKETS[self.bucket][0].format(col=column)

    def params(self) -> dict[str, object]:
        """Bind as ``toDateTime64(%(start)s, 6, 'UTC')``: a string, parsed by ClickHouse as UTC."""
        return {"project": self.project, "start": _text(self.start), "end": _text(self.end)}

    def bucket_starts(self) -> list[datetime]:
        """Every bucket start in ``[start, end)``, so charts have a point for empty buckets."""
        out: list[datetime] = []
        current = floor(self.start, self.bucket)
        while current < self.end and len(out) <= 10 * MAX_POINTS:
            out.append(current)
            current = _next(current, self.bucket)
        return out


def parse(query: Mapping[str, str]) -> Filters:
    """``project``, ``from``, ``to`` (ISO 8601, UTC if no offset) and ``bucket`` (or auto)."""
    project = query.get("project", "")
    if not project or len(project) > MAX_PROJECT_LEN:
        raise BadRequest(f"project: required, at most {MAX_PROJECT_LEN} characters")
    start, end = _time(query, "from"), _time(query, "to")
    if end <= start:
        raise BadRequest("to must be after from")
    if end - start > MAX_SPAN:
        raise BadRequest("the period may span at most 3 years")
    bucket = query.get("bucket", "auto") or "auto"
    if bucket == "auto":
        bucket = auto_bucket(end - start)
    elif bucket not in BUCKETS:
        raise BadRequest(f"bucket: one of auto, {', '.join(BUCKETS)}")
    elif (end - start).total_seconds() / BUCKETS[bucket][1] > 10 * MAX_POINTS:
        raise BadRequest(f"bucket {bucket} gives too many points for this period")
    return Filters(project=project, start=start, end=end, bucket=bucket)


def auto_bucket(span: timedelta) -> str:
    for name, (_, width) in BUCKETS.items():
        if span.total_seconds() / width <= MAX_POINTS:
            return name
    return "month"


def floor(t: datetime, bucket: str) -> datetime:
    """The start of ``t``'s bucket, as ClickHouse's bucket expression computes it."""
    if bucket == "week":
        day = t.replace(hour=0, minute=0, second=0, microsecond=0)
        return day - timedelta(days=day.weekday())
    if bucket == "month":
        return t.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    width = BUCKETS[bucket][1]
    epoch = int(t.timestamp())
    return datetime.fromtimestamp(epoch - epoch % width, UTC)


def _next(t: datetime, bucket: str) -> datetime:
    if bucket == "month":
        return t.replace(year=t.year + t.month // 12, month=t.month % 12 + 1)
    return t + timedelta(seconds=BUCKETS[bucket][1])


def _time(query: Mapping[str, str], name: str) -> datetime:
    raw = query.get(name, "")
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name}: expected an ISO 8601 date-time, got {raw[:40]!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _text(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

"""Seats per period from user activity in ClickHouse, written to ``seat_counts``.

Activity is every event that names a user (``user_id``, else ``anonymous_id``); user
attributes are the ``properties`` of ``identify`` telemetry events (latest before the
period end wins). The rules engine is :func:`meterline.stream_processors.rules.compute_seats`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from meterline.billing import source
from meterline.schemas import ControlPlane, SeatCount, utc_now
from meterline.sinks.clickhouse.rows import seat_count_row
from meterline.sinks.clickhouse.writer import ClickHouseWriter
from meterline.stream_processors.rules import compute_seats, period_starts


def _at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _period_end(period: str, first: date) -> date:
    if period == "day":
        return first + timedelta(days=1)
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def recompute_seats(
    writer: ClickHouseWriter, config: ControlPlane, start: date, end: date,
    project: str | None = None, *, computed_at: datetime | None = None,
) -> list[SeatCount]:  # fmt: skip
    """Seat counts of every seat rule for the periods that intersect ``[start, end]``."""
    rules = config.seat_rules
    if not rules:
        return []
    firsts = [period_starts(r.period, start, end)[0] for r in rules]
    lasts = [_period_end(r.period, period_starts(r.period, start, end)[-1]) for r in rules]
    windows = [r.window for r in rules if r.window is not None]
    since = _at(min(firsts)) - max(windows, default=timedelta(0))
    until = _at(max(lasts))
    client, db = writer.client, writer.database
    acts = source.activity(client, db, since, until, project)
    attrs = source.attributes(client, db, until, project)
    counts = compute_seats(
        rules, acts, attrs, start=start, end=end, projects=[project] if project else []
    )
    stamp = computed_at or utc_now()
    writer.insert("seat_counts", [seat_count_row(c, stamp) for c in counts])
    return counts

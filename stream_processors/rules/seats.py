"""Seats from user activity and user attributes: pure evaluation of the seat rules.

Contract, per rule, project and period (a UTC day or calendar month) in ``[start, end]``:

* ``active``: users with at least ``min_events`` counted events in the trailing ``window``
  that ends at the period end (exclusive): ``[period_end - window, period_end)``. An event
  counts when its name is in ``actions`` (action events) or ``event_types`` (telemetry);
  with both empty every event counts.
* ``assigned``: users whose latest attributes known before the period end satisfy ``where``
  (``match: all`` or ``any``).

One :class:`~meterline.schemas.outcomes.SeatCount` is returned per rule, project and period, zero
seats included, sorted; projects are those seen in the inputs plus ``projects``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

from meterline.schemas.control_plane import SeatRule
from meterline.schemas.events import Event, TelemetryEvent
from meterline.schemas.outcomes import SeatCount, UserActivity, UserAttributes
from meterline.stream_processors.rules.conditions import all_hold


def activity_of(event: Event) -> UserActivity | None:
    """The seat view of an event; None when it names no user."""
    user = event.user_id or event.anonymous_id
    if user is None:
        return None
    if isinstance(event, TelemetryEvent):
        return UserActivity(
            project=event.project, user=user, timestamp=event.timestamp,
            name=event.event_type, source_type="telemetry",
        )  # fmt: skip
    return UserActivity(
        project=event.project, user=user, timestamp=event.timestamp, name=event.name
    )


def period_starts(period: str, start: date, end: date) -> list[date]:
    """Starts of the days or months that intersect ``[start, end]``."""
    first = start if period == "day" else start.replace(day=1)
    starts: list[date] = []
    while first <= end:
        starts.append(first)
        first = _next(period, first)
    return starts


def _next(period: str, first: date) -> date:
    if period == "day":
        return first + timedelta(days=1)
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def _at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def compute_seats(
    rules: Iterable[SeatRule],
    activity: Iterable[UserActivity],
    attributes: Iterable[UserAttributes],
    *,
    start: date,
    end: date,
    projects: Iterable[str] = (),
) -> list[SeatCount]:
    acts = sorted(activity, key=lambda a: (a.project, a.timestamp, a.user))
    attrs = sorted(attributes, key=lambda a: (a.project, a.user, a.updated_at))
    all_projects = sorted({*projects, *(a.project for a in acts), *(a.project for a in attrs)})
    counts: list[SeatCount] = []
    for rule in rules:
        for project in all_projects:
            for first in period_starts(rule.period, start, end):
                period_end = _at(_next(rule.period, first))
                if rule.kind == "active":
                    users = _active(rule, [a for a in acts if a.project == project], period_end)
                else:
                    users = _assigned(rule, [a for a in attrs if a.project == project], period_end)
                counts.append(
                    SeatCount(
                        project=project, rule_id=rule.id, rule_name=rule.name,
                        period=rule.period, period_start=first, seats=len(users),
                        users=tuple(sorted(users)),
                    )
                )  # fmt: skip
    return counts


def _counts(rule: SeatRule, act: UserActivity) -> bool:
    if not rule.actions and not rule.event_types:
        return True
    names = rule.event_types if act.source_type == "telemetry" else rule.actions
    return act.name in names


def _active(rule: SeatRule, acts: list[UserActivity], period_end: datetime) -> set[str]:
    assert rule.window is not None  # validated by SeatRule
    since = period_end - rule.window
    per_user: dict[str, int] = defaultdict(int)
    for act in acts:
        if since <= act.timestamp < period_end and _counts(rule, act):
            per_user[act.user] += 1
    return {user for user, n in per_user.items() if n >= rule.min_events}


def _assigned(rule: SeatRule, attrs: list[UserAttributes], period_end: datetime) -> set[str]:
    latest: dict[str, UserAttributes] = {}
    for record in attrs:  # sorted by updated_at: the last one before the period end wins
        if record.updated_at < period_end:
            latest[record.user] = record
    return {
        user for user, record in latest.items()
        if all_hold(rule.where, record.attributes, rule.match)
    }  # fmt: skip

from datetime import UTC, date, datetime
from typing import Literal

from meterline.schemas import SeatRule, UserActivity, UserAttributes
from meterline.stream_processors.rules import activity_of, compute_seats, period_starts
from tests.stream_processors.rules.fixtures import example, llm, telemetry


def seen(
    user: str, day: date, name: str = "chat", project: str = "p", telemetry: bool = False
) -> UserActivity:
    ts = datetime(day.year, day.month, day.day, 9, tzinfo=UTC)
    source: Literal["action", "telemetry"] = "telemetry" if telemetry else "action"
    return UserActivity(project=project, user=user, timestamp=ts, name=name, source_type=source)


def attrs(user: str, since: date, **attributes: object) -> UserAttributes:
    ts = datetime(since.year, since.month, since.day, tzinfo=UTC)
    return UserAttributes(project="p", user=user, attributes=attributes, updated_at=ts)


def rule(seat_id: str) -> SeatRule:
    [found] = [r for r in example().seat_rules if r.id == seat_id]
    return found


def test_period_starts() -> None:
    assert period_starts("month", date(2026, 11, 15), date(2027, 1, 1)) == [
        date(2026, 11, 1), date(2026, 12, 1), date(2027, 1, 1),
    ]  # fmt: skip
    assert period_starts("day", date(2026, 2, 27), date(2026, 3, 1)) == [
        date(2026, 2, 27), date(2026, 2, 28), date(2026, 3, 1),
    ]  # fmt: skip


def test_active_in_the_last_30_days_per_month() -> None:
    activity = [
        seen("a", date(2026, 3, 2)),  # 30-day window ending Apr 1 starts Mar 2: in March
        seen("b", date(2026, 3, 1)),  # just before March's window: only February
        seen("c", date(2026, 3, 31)),
        seen("a", date(2026, 4, 20)),
        seen("z", date(2026, 3, 15), project="other"),
    ]
    counts = compute_seats(
        [rule("active_30d")], activity, [], start=date(2026, 2, 1), end=date(2026, 4, 30)
    )
    table = {(c.project, c.period_start): c.users for c in counts}
    assert table[("p", date(2026, 2, 1))] == ()
    assert table[("p", date(2026, 3, 1))] == ("a", "c")
    assert table[("p", date(2026, 4, 1))] == ("a",)
    assert table[("other", date(2026, 3, 1))] == ("z",)
    assert [c.seats for c in counts if c.project == "p"] == [0, 2, 1]
    counts_b = compute_seats(
        [rule("active_30d")], activity, [], start=date(2026, 2, 1), end=date(2026, 2, 28)
    )
    assert counts_b[1].users == ()  # b's Mar 1 visit is after February's period end


def test_active_filters_and_min_events_per_day() -> None:
    seat = SeatRule(
        id="d", name="D", kind="active", period="day", window="7d",  # type: ignore[arg-type]
        actions=("chat",), event_types=("user.accept",), min_events=2,
    )  # fmt: skip
    day = date(2026, 3, 10)
    activity = [
        seen("a", day), seen("a", day, "user.accept", telemetry=True),
        seen("b", day), seen("b", day, "export"),
        seen("c", date(2026, 3, 4)), seen("c", day),  # window [Mar 4, Mar 11)
        seen("d", date(2026, 3, 3)), seen("d", day),
    ]  # fmt: skip
    [count] = compute_seats([seat], activity, [], start=day, end=day)
    assert (count.period, count.users) == ("day", ("a", "c"))


def test_assigned_by_role_or_department() -> None:
    attributes = [
        attrs("ann", date(2026, 1, 5), role="admin"),
        attrs("bob", date(2026, 1, 5), role="viewer", department="finance"),
        attrs("cat", date(2026, 1, 5), role="viewer", department="sales"),
        attrs("cat", date(2026, 2, 10), role="analyst"),  # promoted in February
        attrs("dan", date(2026, 1, 5), role="admin"),
        attrs("dan", date(2026, 2, 1), role="viewer"),  # demoted on Feb 1
        attrs("eve", date(2026, 1, 5), role="'; DROP TABLE seats; --"),
    ]
    counts = compute_seats(
        [rule("assigned_role_or_department")], [], attributes,
        start=date(2026, 1, 1), end=date(2026, 2, 28),
    )  # fmt: skip
    assert [(c.period_start, c.users) for c in counts] == [
        (date(2026, 1, 1), ("ann", "bob", "dan")),
        (date(2026, 2, 1), ("ann", "bob", "cat")),
    ]


def test_activity_of_events() -> None:
    call = activity_of(llm("l1", user="u1"))
    accept = activity_of(telemetry("t1", "user.accept"))
    assert call is not None and (call.user, call.name, call.source_type) == ("u1", "chat", "action")
    assert accept is not None and (accept.name, accept.source_type) == ("user.accept", "telemetry")
    assert activity_of(llm("l2", user=None)) is None

"""Recompute outcomes and seats for a period from the raw events in ClickHouse.

Contract: outcomes come from the same pure evaluation as the stream's rule stage
(:func:`~meterline.stream_processors.rules.outcomes.evaluate_trajectory` over whole trajectories),
so ids and values equal the stream's. Trajectory rules see every event of each trajectory
that has an event in ``[start, end)`` (processed one UTC day at a time to bound memory);
``scope: user`` rules see the events of ``[start, end)`` that name a user. Outcomes that
are live in ClickHouse for those trajectories (or, for user rules, in the range) but no
longer produced -- a rule's revision changed, a rule was removed -- are written retracted.
Rows are written with one ``computed_at`` (the ReplacingMergeTree version): a backfill
replaces what the stream wrote before it. Idempotent: running it twice gives the same rows.

Run it only over events that have landed: the commands pass as ``stamp`` the watermark
instant of :meth:`~meterline.billing.watermark.Watermark.wait_landed` (every record
given to the pipeline before it is in ClickHouse), so what the stream computes after that
instant -- from events the backfill may not have read yet -- keeps a higher version than
the backfill's rows and wins over them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from meterline.billing import source
from meterline.billing.seats import recompute_seats
from meterline.billing.watermark import Watermark
from meterline.schemas import ControlPlane, Outcome, utc_now
from meterline.sinks.clickhouse.rows import outcome_row
from meterline.sinks.clickhouse.writer import ClickHouseWriter
from meterline.stream_processors.rules import evaluate_trajectory, evaluate_user


@dataclass(frozen=True)
class BackfillResult:
    outcomes: int
    retracted: int
    seat_rows: int


def at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def backfill(
    writer: ClickHouseWriter, config: ControlPlane, start: date, end: date,
    project: str | None = None, *, stamp: datetime | None = None,
) -> BackfillResult:  # fmt: skip
    """Outcomes and seats for the UTC days ``start`` .. ``end`` (inclusive), written with
    ``computed_at = stamp`` (default now)."""
    stamp = stamp or utc_now()
    made = retracted = 0
    day = start
    while day <= end:
        n, r = _trajectory_day(writer, config, at(day), at(day + timedelta(days=1)), project, stamp)
        made, retracted = made + n, retracted + r
        day += timedelta(days=1)
    n, r = _user_rules(writer, config, at(start), at(end + timedelta(days=1)), project, stamp)
    seats = recompute_seats(writer, config, start, end, project, computed_at=stamp)
    return BackfillResult(outcomes=made + n, retracted=retracted + r, seat_rows=len(seats))


def backfill_landed(
    writer: ClickHouseWriter, config: ControlPlane, start: date, end: date,
    project: str | None, watermark: Watermark | None, wait_s: float,
) -> BackfillResult:  # fmt: skip
    """:func:`backfill` once every record given to the pipeline has landed (``watermark``
    None: no broker, nothing in flight), at the watermark instant.

    Raises:
        NotLanded: not landed within ``wait_s``; nothing was written.
    """
    stamp = watermark.wait_landed(wait_s) if watermark is not None else None
    return backfill(writer, config, start, end, project, stamp=stamp)


def _trajectory_day(
    writer: ClickHouseWriter, config: ControlPlane, since: datetime, until: datetime,
    project: str | None, stamp: datetime,
) -> tuple[int, int]:  # fmt: skip
    client, db = writer.client, writer.database
    events = source.trace_events(client, db, since, until, project)
    found = evaluate_trajectory(config, events)
    user_rules = [r.id for r in config.outcome_rules if r.scope == "user"]
    live = source.trace_outcomes(client, db, since, until, project, user_rules)
    return write_outcomes(writer, found, live, config, stamp)


def _user_rules(
    writer: ClickHouseWriter, config: ControlPlane, since: datetime, until: datetime,
    project: str | None, stamp: datetime,
) -> tuple[int, int]:  # fmt: skip
    user_rules = [r.id for r in config.outcome_rules if r.scope == "user"]
    if not user_rules:
        return 0, 0
    client, db = writer.client, writer.database
    found = evaluate_user(config, source.user_events(client, db, since, until, project))
    where = "rule_id IN %(rules)s AND timestamp >= %(start)s AND timestamp < %(end)s"
    params: dict[str, Any] = {"rules": user_rules, "start": since, "end": until}
    if project:
        where += " AND project = %(project)s"
        params["project"] = project
    live = source.live_outcomes(client, db, where, params)
    return write_outcomes(writer, found, live, config, stamp)


def write_outcomes(
    writer: ClickHouseWriter, found: list[Outcome], live: Any, config: ControlPlane,
    stamp: datetime,
) -> tuple[int, int]:  # fmt: skip
    """``found`` with ``computed_at = stamp``, and the rows of ``live`` not among them
    retracted. Returns (outcomes, retractions)."""
    keep = {o.outcome_id for o in found}
    gone = [_retraction(row, config, stamp) for row in live if row["outcome_id"] not in keep]
    rows = [outcome_row(o.model_copy(update={"computed_at": stamp})) for o in found]
    writer.insert("outcomes", rows + [outcome_row(o) for o in gone])
    return len(found), len(gone)


def _retraction(row: dict[str, Any], config: ControlPlane, stamp: datetime) -> Outcome:
    return Outcome(
        outcome_id=row["outcome_id"], project=row["project"], rule_id=row["rule_id"],
        rule_revision=row["rule_revision"], rule_name=row["rule_name"],
        config_version=config.version, trace_id=row["trace_id"] or None,
        user_id=row["user_id"] or None, anonymous_id=row["anonymous_id"] or None,
        event_ids=(), value=0.0, timestamp=row["timestamp"], retracted=True, computed_at=stamp,
    )  # fmt: skip

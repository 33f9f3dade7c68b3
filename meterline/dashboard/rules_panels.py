"""Panels over the rules-derived tables (outcomes, seat_counts), which may not exist yet.

Each is wrapped by :func:`needs`: when its table (or a column it reads, see
``queries.REQUIRED_COLUMNS``) is missing, the panel says so instead of failing. Their SQL is
in ``queries.py`` under "Rules-derived tables".
"""

from __future__ import annotations

from collections.abc import Callable

from meterline.dashboard import queries as q
from meterline.dashboard.filters import Filters
from meterline.dashboard.shapes import Panel, column, plain, series_chart, table
from meterline.dashboard.source import Source, iso


def needs(table_name: str, panel: Callable[[Source, Filters], Panel]) -> Callable[..., Panel]:
    """``panel`` if ``table_name`` has the columns it reads, else an "unavailable" note."""

    def guarded(src: Source, f: Filters) -> Panel:
        missing = src.missing(table_name)
        if not missing:
            return panel(src, f)
        if missing == sorted(q.REQUIRED_COLUMNS[table_name]):
            note = f"No outcome or seat rules configured: table {table_name} is not present."
        else:
            note = f"Table {table_name} lacks column(s) {', '.join(missing)}."
        return {"status": "unavailable", "note": note}

    return guarded


def outcomes(src: Source, f: Filters) -> Panel:
    return {
        "status": "ok",
        "chart": series_chart(
            f, src.rows(q.OUTCOMES_OVER_TIME, f), kind="bar", unit="outcomes", stacked=True
        ),
        "table": table(
            [
                column("rule", "Rule", "text"),
                column("outcomes", "Outcomes"),
                column("value", "Value", "usd"),
            ],
            src.rows(q.OUTCOMES_BY_RULE, f),
        ),
    }


def seats(src: Source, f: Filters) -> Panel:
    rows = src.rows(q.SEATS, f)
    labels = sorted({iso(start) for _, start, _, _ in rows})
    rules = sorted({(period, rule) for period, _, rule, _ in rows})
    by = {(p, iso(s), r): n for p, s, r, n in rows}
    return {
        "status": "ok",
        "chart": {
            "type": "bar",
            "labels": labels,
            "bucket": "day",
            "unit": "seats",
            "datasets": [
                {
                    "label": f"{rule} ({period})",
                    "data": [by.get((period, lb, rule), 0) for lb in labels],
                }
                for period, rule in rules
            ],
        },
        "table": table(
            [
                column("period", "Period", "text"),
                column("period_start", "Start", "text"),
                column("rule", "Rule", "text"),
                column("seats", "Seats"),
            ],
            ((p, iso(s)[:10], r, n) for p, s, r, n in rows),
        ),
    }


def cost_per_outcome(src: Source, f: Filters) -> Panel:
    rows = src.rows(q.COST_PER_OUTCOME, f)
    return {
        "status": "ok",
        "chart": {
            "type": "bar",
            "unit": "USD",
            "labels": [r[0] for r in rows],
            "datasets": [{"label": "cost per outcome", "data": [plain(r[3]) for r in rows]}],
        },
        "table": table(
            [
                column("rule", "Rule", "text"),
                column("outcomes", "Outcomes"),
                column("cost_usd", "LLM cost of their trajectories", "usd"),
                column("cost_per_outcome", "Cost per outcome", "usd"),
            ],
            rows,
        ),
    }

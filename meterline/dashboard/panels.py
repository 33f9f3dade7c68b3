"""One function per dashboard panel: filters in, a JSON-ready dict out.

A panel is ``{"status": "ok" | "unavailable", "note", "chart" (or "charts": a list of named
charts), "table"}``. A chart is what the page hands Chart.js (labels, datasets, unit);
``table`` holds the same numbers as rows (``columns`` name a key, a label and a format), so
people -- and the browser test -- can read the exact values next to the chart.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from meterline.dashboard import queries as q
from meterline.dashboard import rules_panels as rules
from meterline.dashboard.filters import Filters
from meterline.dashboard.shapes import Panel, column, plain, series_chart, table
from meterline.dashboard.source import Source, iso


def summary(src: Source, f: Filters) -> Panel:
    ((events, joined, traces, llm, tin, tout, cost, users, actions, errors),) = src.rows(
        q.SUMMARY, f
    )
    (dead,) = src.rows(
        f"SELECT count() FROM {{db}}.dead_letters FINAL WHERE {q.DEAD_LETTERS_IN_PERIOD}", f
    )[0]
    cols = [
        column("events", "Events"),
        column("joined", "Joined to trajectory", "pct"),
        column("trajectories", "Trajectories"),
        column("users", "Users"),
        column("llm_calls", "LLM calls"),
        column("tokens", "LLM tokens"),
        column("cost_usd", "LLM cost", "usd"),
        column("error_rate", "Action error rate", "pct"),
        column("dead_letters", "Dead letters"),
    ]
    row = [
        events,
        joined / events if events else 0,
        traces,
        users,
        llm,
        tin + tout,
        cost,
        errors / actions if actions else 0,
        dead,
    ]
    return {"status": "ok", "table": table(cols, [row])}


def events(src: Source, f: Filters) -> Panel:
    points = []
    for b, n, joined in src.rows(q.EVENTS_OVER_TIME, f):
        points += [(b, "events", n), (b, "not joined", n - joined)]
    return {
        "status": "ok",
        "chart": series_chart(f, points, kind="line", unit="events", stacked=False),
        "table": table(
            [
                column("kind", "Kind", "text"),
                column("events", "Events"),
                column("joined", "Joined"),
            ],
            src.rows(q.EVENTS_BY_KIND, f),
        ),
    }


def _llm(dim: str, label: str) -> Callable[[Source, Filters], Panel]:
    def panel(src: Source, f: Filters) -> Panel:
        over_time = src.rows(q.LLM_OVER_TIME, f, dim=dim)
        cost = series_chart(
            f, ((b, k, c) for b, k, c, _ in over_time), kind="bar", unit="USD", stacked=True
        )
        tokens = series_chart(
            f, ((b, k, t) for b, k, _, t in over_time), kind="bar", unit="tokens", stacked=True
        )
        return {
            "status": "ok",
            "charts": [{**cost, "name": "Cost"}, {**tokens, "name": "Tokens"}],
            "table": table(
                [
                    column("key", label, "text"),
                    column("calls", "LLM calls"),
                    column("input_tokens", "Input tokens"),
                    column("output_tokens", "Output tokens"),
                    column("cost_usd", "Cost", "usd"),
                ],
                src.rows(q.LLM_TOTALS, f, dim=dim),
            ),
        }

    return panel


def latency(src: Source, f: Filters) -> Panel:
    rows = src.rows(q.ACTIONS, f)
    top = rows[:15]
    return {
        "status": "ok",
        "chart": {
            "type": "bar",
            "horizontal": True,
            "unit": "ms",
            "labels": [f"{kind}: {name}" for kind, name, *_ in top],
            "datasets": [
                {"label": "p50", "data": [plain(r[4]) or 0 for r in top]},
                {"label": "p95", "data": [plain(r[5]) or 0 for r in top]},
            ],
        },
        "table": table(
            [
                column("kind", "Kind", "text"),
                column("name", "Action", "text"),
                column("calls", "Calls"),
                column("errors", "Errors"),
                column("error_rate", "Error rate", "pct"),
                column("p50_ms", "p50", "ms"),
                column("p95_ms", "p95", "ms"),
            ],
            ((k, n, c, e, e / c if c else 0, p50, p95) for k, n, c, e, p50, p95 in rows),
        ),
    }


def errors(src: Source, f: Filters) -> Panel:
    rows = src.rows(q.ERRORS_OVER_TIME, f)
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for _, kind, n, e in rows:
        totals[kind][0] += n
        totals[kind][1] += e
    chart = series_chart(
        f,
        ((b, k, e / n * 100 if n else 0) for b, k, n, e in rows),
        kind="line",
        unit="%",
        stacked=False,
    )
    return {
        "status": "ok",
        "chart": chart,
        "table": table(
            [
                column("kind", "Kind", "text"),
                column("calls", "Calls"),
                column("errors", "Errors"),
                column("error_rate", "Error rate", "pct"),
            ],
            ((k, n, e, e / n if n else 0) for k, (n, e) in sorted(totals.items())),
        ),
    }


def dead_letters(src: Source, f: Filters) -> Panel:
    points = src.rows(q.DEAD_LETTERS_OVER_TIME, f, bucket_column="received_at")
    return {
        "status": "ok",
        "note": "All projects (a rejected record may name none), by time received.",
        "chart": series_chart(f, points, kind="bar", unit="records", stacked=True),
        "table": table(
            [
                column("error_type", "Error type", "text"),
                column("stage", "Stage", "text"),
                column("count", "Records"),
                column("example", "Example reason", "text"),
            ],
            src.rows(q.DEAD_LETTERS_BY_TYPE, f),
        ),
    }


def pricing(src: Source, f: Filters) -> Panel:
    """llm_calls by price status, the models the book could not bill (call count and
    tokens), and the price-book versions of the period (latest first)."""
    from meterline.ops.status import price_book_version

    books = src.rows(q.PRICE_BOOKS, f)
    seen = ", ".join(f"{b} ({n} calls)" for b, n in books) or "none"
    return {
        "status": "ok",
        "note": f"Price book here: {price_book_version()}. Versions that priced this "
        f"period's calls: {seen}. Unpriced calls bill nothing until a price is added and "
        "`meterline reprice` runs.",
        "chart": series_chart(
            f, src.rows(q.PRICING_OVER_TIME, f), kind="bar", unit="calls", stacked=True
        ),
        "table": table(
            [
                column("provider", "Provider", "text"),
                column("model", "Model", "text"),
                column("status", "Status", "text"),
                column("calls", "LLM calls"),
                column("input_tokens", "Input tokens"),
                column("output_tokens", "Output tokens"),
            ],
            src.rows(q.UNPRICED_MODELS, f),
        ),
    }


PANELS: dict[str, Callable[[Source, Filters], Panel]] = {
    "summary": summary,
    "events": events,
    "usage_by_model": _llm("model", "Model"),
    "usage_by_user": _llm(q.USER, "User"),
    "latency": latency,
    "errors": errors,
    "dead_letters": dead_letters,
    "pricing": pricing,
    "outcomes": rules.needs("outcomes", rules.outcomes),
    "seats": rules.needs("seat_counts", rules.seats),
    "cost_per_outcome": rules.needs("outcomes", rules.cost_per_outcome),
}


def projects(src: Source) -> list[dict[str, Any]]:
    """Projects with events, and the time range each covers (for the period filter)."""
    if src.missing("events"):
        return []
    return [
        {"project": p, "first": iso(first), "last": iso(last)}
        for p, first, last in src.rows(q.PROJECTS)
    ]

"""``meterline report``: the billing tables for a project and a date range, as text.

Reads only the views (sinks/clickhouse/views.py), which count exactly (FINAL); every value
is bound as a parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from meterline.ops.tables import table
from meterline.sinks.clickhouse.identifiers import check_identifier
from meterline.sinks.clickhouse.views import action_stats_sql


@dataclass(frozen=True)
class Section:
    title: str
    headers: list[str]
    rows: list[tuple[Any, ...]]


_DAYS = "period_start >= %(from)s AND period_start <= %(to)s"
_AT = "toDate(timestamp) >= %(from)s AND toDate(timestamp) <= %(to)s"
_PROJECT = " AND project = %(project)s"

QUERIES: list[tuple[str, list[str], str]] = [
    (
        "Usage per user and month",
        ["project", "month", "user", "actions", "llm calls", "input tokens", "output tokens",
         "llm cost usd", "cost usd"],
        "SELECT project, toStartOfMonth(period_start) AS month, user, sum(actions), "
        "sum(llm_calls), sum(input_tokens), sum(output_tokens), round(sum(llm_cost_usd), 6), "
        "round(sum(cost_usd), 6) FROM {db}.usage_by_user_daily WHERE " + _DAYS + "{project} "
        "GROUP BY project, month, user ORDER BY project, month, user",
    ),
    (
        "Outcomes per rule and month",
        ["project", "month", "rule", "name", "outcomes", "value"],
        "SELECT project, toStartOfMonth(period_start) AS month, rule_id, any(rule_name), "
        "sum(outcomes), round(sum(value), 6) FROM {db}.outcomes_by_rule_daily WHERE "
        + _DAYS + "{project} GROUP BY project, month, rule_id ORDER BY project, month, rule_id",
    ),
    (
        "Seats per period",
        ["project", "rule", "name", "period", "period start", "seats"],
        "SELECT project, rule_id, rule_name, period, period_start, seats FROM {db}.seats "
        "WHERE period_start >= toStartOfMonth(toDate(%(from)s)) AND period_start <= %(to)s"
        "{project} ORDER BY project, rule_id, period, period_start",
    ),
    (
        "Cost per outcome (LLM + tool cost of the outcome's trajectory)",
        ["project", "rule", "name", "outcomes", "total cost usd", "cost per outcome usd",
         "llm cost per outcome usd"],
        "SELECT project, rule_id, any(rule_name), count(), round(sum(cost_usd), 6), "
        "round(avg(cost_usd), 6), round(avg(llm_cost_usd), 6) FROM {db}.outcome_costs WHERE "
        + _AT + "{project} GROUP BY project, rule_id ORDER BY project, rule_id",
    ),
]  # fmt: skip

ACTIONS = (
    "Latency and errors per action",
    ["project", "action", "display name", "kind", "calls", "errors", "error rate", "p50 ms",
     "p95 ms"],
)  # fmt: skip


def sections(
    client: Any, database: str, *, project: str | None, start: date, end: date
) -> list[Section]:
    db = check_identifier(database)
    params: dict[str, Any] = {"from": start, "to": end}
    if project:
        params["project"] = project
    scope = _PROJECT if project else ""
    out = []
    for title, headers, sql in QUERIES:
        rows = client.query(sql.format(db=db, project=scope), parameters=params).result_rows
        out.append(Section(title, headers, [tuple(r) for r in rows]))
    stats = action_stats_sql(db, period="toDate(%(from)s)", where=_AT + scope)
    rows = client.query(
        "SELECT project, action, display_name, kind, calls, errors, round(error_rate, 4), "
        f"round(p50_ms, 1), round(p95_ms, 1) FROM ({stats}) ORDER BY project, action, kind",
        parameters=params,
    ).result_rows
    out.append(Section(ACTIONS[0], ACTIONS[1], [tuple(r) for r in rows]))
    return out


def render(found: list[Section]) -> str:
    parts = []
    for s in found:
        body = table(s.headers, s.rows) if s.rows else "(none)"
        parts.append(f"{s.title}\n\n{body}")
    return "\n\n".join(parts) + "\n"

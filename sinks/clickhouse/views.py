"""Billing and analytics views over meterline's tables (``CREATE OR REPLACE VIEW``: idempotent).

Exact counts despite ReplacingMergeTree duplicates: usage per user reads ``event_latest``
(one argMax row per event, no ``FINAL``); the other views read their tables with ``FINAL``
(one row per key, highest version), and outcome views drop retracted rows after ``FINAL``.
Display names are joined from the ``display_names`` table (latest row per action by
``updated_at``), never spliced into SQL. Columns are documented in docs/control-plane.md.
"""

from __future__ import annotations

from meterline.sinks.clickhouse.identifiers import check_identifier

#: view suffix -> ClickHouse function giving the period start (a Date) of a timestamp.
PERIODS = {"daily": "toDate", "monthly": "toStartOfMonth"}

USER = "if(x.user_id != '', x.user_id, x.anonymous_id)"

#: Usage per user reads ``event_latest`` (argMax per event over the narrow ``event_facts``,
#: docs/architecture.md "Counting exactly in ClickHouse"), not ``events FINAL``.
USAGE = """
SELECT x.project AS project, {fn}(x.day) AS period_start,
    if(x.user_id_ != '', x.user_id_, x.anonymous_id_) AS user,
    countIf(x.kind_ != 'telemetry') AS actions,
    countIf(x.kind_ = 'llm_call') AS llm_calls,
    countIf(x.kind_ = 'tool_call') AS tool_calls,
    countIf(x.kind_ = 'telemetry') AS telemetry_events,
    sum(x.input_tokens_) AS input_tokens,
    sum(x.output_tokens_) AS output_tokens,
    sum(x.cached_tokens_) AS cached_tokens,
    toFloat64(sumIf(x.cost_usd_, x.kind_ = 'llm_call')) AS llm_cost_usd,
    toFloat64(sum(x.cost_usd_)) AS cost_usd
FROM {db}.event_latest AS x
GROUP BY project, period_start, user
"""

OUTCOMES_BY_RULE = """
SELECT x.project AS project, x.rule_id AS rule_id, argMax(x.rule_name, x.timestamp) AS rule_name,
    {fn}(x.timestamp) AS period_start,
    count() AS outcomes,
    sum(x.value) AS value,
    uniqExact({user}) AS users
FROM {db}.outcomes AS x FINAL
WHERE x.retracted = 0
GROUP BY project, rule_id, period_start
"""

SEATS = """
SELECT project, rule_id, rule_name, period, period_start, seats, users, computed_at
FROM {db}.seat_counts FINAL
"""

TRACE_COSTS = """
SELECT x.project AS project, x.trace_id AS trace_id,
    sumIf(x.billed_cost_usd, x.kind = 'llm_call') AS llm_cost_usd,
    sumIf(x.billed_cost_usd, x.kind = 'tool_call') AS tool_cost_usd,
    sum(x.billed_cost_usd) AS cost_usd,
    countIf(x.kind = 'llm_call') AS llm_calls,
    sum(x.input_tokens) AS input_tokens,
    sum(x.output_tokens) AS output_tokens
FROM {db}.events AS x FINAL
WHERE x.trace_id != ''
GROUP BY project, trace_id
"""

OUTCOME_COSTS = """
SELECT o.project AS project, o.outcome_id AS outcome_id, o.rule_id AS rule_id,
    o.rule_name AS rule_name, o.trace_id AS trace_id,
    if(o.user_id != '', o.user_id, o.anonymous_id) AS user,
    o.value AS value, o.timestamp AS timestamp,
    c.llm_cost_usd AS llm_cost_usd, c.tool_cost_usd AS tool_cost_usd, c.cost_usd AS cost_usd,
    c.llm_calls AS llm_calls, c.input_tokens AS input_tokens, c.output_tokens AS output_tokens
FROM (SELECT * FROM {db}.outcomes FINAL WHERE retracted = 0) AS o
LEFT JOIN {db}.trace_costs AS c ON o.project = c.project AND o.trace_id = c.trace_id
"""

ACTION_NAMES = """
SELECT x.action AS action, argMax(x.display_name, x.updated_at) AS display_name
FROM {db}.display_names AS x
GROUP BY action
"""

#: ``{where}`` is a constant condition written in code (parameters bound by the client).
ACTION_STATS = """
SELECT e.project AS project, {period} AS period_start, e.name AS action,
    if(d.display_name != '', d.display_name, e.name) AS display_name,
    e.kind AS kind,
    count() AS calls,
    countIf(e.status = 'error') AS errors,
    errors / calls AS error_rate,
    quantileExact(0.5)(e.duration_ms) AS p50_ms,
    quantileExact(0.95)(e.duration_ms) AS p95_ms
FROM (SELECT * FROM {db}.events FINAL WHERE record_type = 'action' AND {where}) AS e
LEFT JOIN {db}.action_names AS d ON e.name = d.action
GROUP BY project, period_start, action, display_name, kind
"""


def action_stats_sql(
    database: str, *, period: str = "toDate(e.timestamp)", where: str = "1"
) -> str:
    """The action latency/error query; ``period`` and ``where`` are constants from code."""
    return ACTION_STATS.format(db=check_identifier(database), period=period, where=where)


def view_statements(database: str) -> list[str]:
    db = check_identifier(database)
    views: list[tuple[str, str]] = []
    for suffix, fn in PERIODS.items():
        views.append((f"usage_by_user_{suffix}", USAGE.format(db=db, fn=fn, user=USER)))
        views.append(
            (f"outcomes_by_rule_{suffix}", OUTCOMES_BY_RULE.format(db=db, fn=fn, user=USER))
        )
    views += [
        ("seats", SEATS.format(db=db)),
        ("trace_costs", TRACE_COSTS.format(db=db)),
        ("outcome_costs", OUTCOME_COSTS.format(db=db)),
        ("action_names", ACTION_NAMES.format(db=db)),
        ("action_stats_daily", action_stats_sql(db)),
    ]
    return [f"CREATE OR REPLACE VIEW {db}.{name} AS {sql.strip()}" for name, sql in views]

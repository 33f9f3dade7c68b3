"""Every SQL statement of the dashboard, in one place.

Placeholders: ``{db}`` (a checked identifier), ``{bucket}`` (an expression from
:data:`meterline.dashboard.filters.BUCKETS`), ``{user}`` (:data:`USER`); request
values are bound by clickhouse-connect (``%(project)s``, ``%(start)s``, ``%(end)s``).
Tables are read with ``FINAL``: one row per key, so counts are exact.
"""

from __future__ import annotations

#: The project and ``[start, end)`` over a table's ``timestamp``.
IN_PERIOD = (
    "project = %(project)s"
    " AND timestamp >= toDateTime64(%(start)s, 6, 'UTC')"
    " AND timestamp < toDateTime64(%(end)s, 6, 'UTC')"
)
#: Who an event is attributed to: ``user_id``, else ``anonymous_id``.
USER = "if(user_id != '', user_id, if(anonymous_id != '', anonymous_id, '(none)'))"

PROJECTS = """
SELECT project, min(timestamp), max(timestamp)
FROM {db}.events GROUP BY project ORDER BY project
"""

PRESENT_COLUMNS = """
SELECT table, name FROM system.columns WHERE database = %(db)s AND table IN %(tables)s
"""

SUMMARY = f"""
SELECT count(), countIf(joined = 1), uniqExact(trace_id) - (countIf(trace_id = '') > 0),
       countIf(kind = 'llm_call'), sumIf(input_tokens, kind = 'llm_call'),
       sumIf(output_tokens, kind = 'llm_call'), sumIf(billed_cost_usd, kind = 'llm_call'),
       uniqExactIf({USER}, {USER} != '(none)'),
       countIf(record_type = 'action'), countIf(record_type = 'action' AND status = 'error')
FROM {{db}}.events FINAL WHERE {IN_PERIOD}
"""

EVENTS_OVER_TIME = f"""
SELECT {{bucket}} AS b, count(), countIf(joined = 1)
FROM {{db}}.events FINAL WHERE {IN_PERIOD} GROUP BY b ORDER BY b
"""

EVENTS_BY_KIND = f"""
SELECT if(record_type = 'telemetry', 'telemetry', kind) AS k, count(), countIf(joined = 1)
FROM {{db}}.events FINAL WHERE {IN_PERIOD} GROUP BY k ORDER BY k
"""

#: LLM usage per ``{dim}`` (``model`` or :data:`USER`): over time, then totals.
LLM_OVER_TIME = f"""
SELECT {{bucket}} AS b, {{dim}} AS k, sum(billed_cost_usd), sum(input_tokens + output_tokens)
FROM {{db}}.events FINAL WHERE {IN_PERIOD} AND kind = 'llm_call'
GROUP BY b, k ORDER BY b, k
"""
LLM_TOTALS = f"""
SELECT {{dim}} AS k, count(), sum(input_tokens), sum(output_tokens), sum(billed_cost_usd)
FROM {{db}}.events FINAL WHERE {IN_PERIOD} AND kind = 'llm_call'
GROUP BY k ORDER BY sum(billed_cost_usd) DESC, k
"""

#: The price book (docs/control-plane.md, "Prices"): llm_calls by price status over time,
#: the models it could not bill, and the book versions that priced the period's calls.
PRICING_OVER_TIME = f"""
SELECT {{bucket}} AS b, if(price_status = '', 'not priced', price_status) AS k, count()
FROM {{db}}.events FINAL WHERE {IN_PERIOD} AND kind = 'llm_call'
GROUP BY b, k ORDER BY b, k
"""
UNPRICED_MODELS = f"""
SELECT provider, model, price_status, count(), sum(input_tokens), sum(output_tokens)
FROM {{db}}.events FINAL
WHERE {IN_PERIOD} AND kind = 'llm_call' AND price_status IN ('unpriced', 'invalid_tokens')
GROUP BY provider, model, price_status ORDER BY count() DESC, provider, model
"""
PRICE_BOOKS = f"""
SELECT price_book, count() FROM {{db}}.events FINAL
WHERE {IN_PERIOD} AND kind = 'llm_call' AND price_book != ''
GROUP BY price_book ORDER BY max(processed_at) DESC
"""

#: Action latency (ms) and errors per kind and name; telemetry has neither.
ACTIONS = f"""
SELECT kind, name, count(), countIf(status = 'error'),
       quantileExact(0.5)(duration_ms), quantileExact(0.95)(duration_ms)
FROM {{db}}.events FINAL WHERE {IN_PERIOD} AND record_type = 'action'
GROUP BY kind, name ORDER BY count() DESC, kind, name
"""
ERRORS_OVER_TIME = f"""
SELECT {{bucket}} AS b, kind, count(), countIf(status = 'error')
FROM {{db}}.events FINAL WHERE {IN_PERIOD} AND record_type = 'action'
GROUP BY b, kind ORDER BY b, kind
"""

#: Dead letters carry no project (an invalid record may not have one): period only.
DEAD_LETTERS_IN_PERIOD = (
    "received_at >= toDateTime64(%(start)s, 6, 'UTC')"
    " AND received_at < toDateTime64(%(end)s, 6, 'UTC')"
)
DEAD_LETTERS_OVER_TIME = f"""
SELECT {{bucket}} AS b, error_type, count()
FROM {{db}}.dead_letters FINAL WHERE {DEAD_LETTERS_IN_PERIOD}
GROUP BY b, error_type ORDER BY b, error_type
"""
DEAD_LETTERS_BY_TYPE = f"""
SELECT error_type, stage, count(), any(reason)
FROM {{db}}.dead_letters FINAL WHERE {DEAD_LETTERS_IN_PERIOD}
GROUP BY error_type, stage ORDER BY count() DESC, error_type, stage
"""

# --- Rules-derived tables (outcomes, seat_counts) ---------------------------------------
# Written by the rule stage and the seat recompute (sinks/clickhouse/ddl.py: OUTCOMES,
# SEAT_COUNTS); a database without them shows "not present" instead. Retracted outcomes (a
# later event un-matched them) are left out. The columns each query needs are listed in
# REQUIRED_COLUMNS: adapt both together.

REQUIRED_COLUMNS: dict[str, frozenset[str]] = {
    "events": frozenset({"project", "timestamp"}),
    "outcomes": frozenset(
        {"project", "rule_name", "trace_id", "value", "timestamp", "retracted"}
    ),
    "seat_counts": frozenset({"project", "rule_name", "period", "period_start", "seats"}),
}

OUTCOMES_OVER_TIME = f"""
SELECT {{bucket}} AS b, rule_name, count()
FROM {{db}}.outcomes FINAL WHERE {IN_PERIOD} AND retracted = 0
GROUP BY b, rule_name ORDER BY b, rule_name
"""
OUTCOMES_BY_RULE = f"""
SELECT rule_name, count(), sum(value)
FROM {{db}}.outcomes FINAL WHERE {IN_PERIOD} AND retracted = 0
GROUP BY rule_name ORDER BY rule_name
"""

#: Seats per period start: ``period`` is ``day`` or ``month`` (the seat rule's period).
SEATS = """
SELECT period, period_start, rule_name, sum(seats)
FROM {db}.seat_counts FINAL
WHERE project = %(project)s
  AND period_start >= toDate(toDateTime64(%(start)s, 6, 'UTC'))
  AND period_start < toDateTime64(%(end)s, 6, 'UTC')
GROUP BY period, period_start, rule_name ORDER BY period, period_start, rule_name
"""

#: Cost per outcome: the LLM cost of the trajectories that produced a rule's outcomes,
#: each trajectory counted once per rule, divided by the rule's outcomes.
COST_PER_OUTCOME = f"""
SELECT o.rule_name, sum(o.n) AS outcomes, sum(c.cost) AS cost,
       if(outcomes = 0, 0, cost / outcomes)
FROM (
    SELECT rule_name, trace_id, count() AS n FROM {{db}}.outcomes FINAL
    WHERE {IN_PERIOD} AND retracted = 0 GROUP BY rule_name, trace_id
) AS o
LEFT JOIN (
    SELECT trace_id, sum(billed_cost_usd) AS cost FROM {{db}}.events FINAL
    WHERE project = %(project)s AND kind = 'llm_call' AND trace_id != '' GROUP BY trace_id
) AS c ON o.trace_id = c.trace_id
GROUP BY o.rule_name ORDER BY o.rule_name
"""

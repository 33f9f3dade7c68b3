"""Tables the sink writes. Idempotent DDL; ReplacingMergeTree keyed by id as the backstop.

Counting exactly: re-deliveries (at-least-once) and late joins write the same key again;
``FINAL`` (or ``argMax`` by ``version``) reads one row per key. The analytics views
(``usage_daily``, ``event_counts``) do that per event on ``event_facts``, a narrow copy of
``events`` sorted by (project, day, event_id) and fed by a materialized view, so a query never
pays ``FINAL`` on the wide table (docs/architecture.md, "Counting exactly in ClickHouse").

Sink tables keep a non-replicated deduplication window, so an insert repeated with the same
``insert_deduplication_token`` is dropped by ClickHouse (``sinks/clickhouse/writer.py``).
"""

from __future__ import annotations

from meterline.sinks.clickhouse.identifiers import check_identifier
from meterline.sinks.clickhouse.views import view_statements

TS = "DateTime64(6, 'UTC')"

#: Recent insert blocks per table whose tokens ClickHouse remembers (non-replicated tables;
#: Replicated* tables use ``replicated_deduplication_window``, on by default).
DEDUP_WINDOW = 1000
_DEDUP = f"SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW}"

#: The price book's columns of ``events`` (docs/control-plane.md, "Prices"): the cost the
#: book computed (NULL: unpriced or invalid tokens), the cost the bill uses, which one it
#: is, what the book made of the call and its version. ``cost_usd`` stays what the
#: producer reported. Rows written before these columns bill their ``cost_usd``.
PRICING = (
    ("computed_cost_usd", "Nullable(Float64)"),
    ("billed_cost_usd", "Float64 DEFAULT cost_usd"),
    ("cost_source", "LowCardinality(String) DEFAULT 'reported'"),
    ("price_status", "LowCardinality(String)"),
    ("price_book", "LowCardinality(String)"),
)
PRICING_COLUMNS = ",\n    ".join(f"{name} {kind}" for name, kind in PRICING)

EVENTS = f"""
CREATE TABLE IF NOT EXISTS {{db}}.events (
    project LowCardinality(String),
    event_id String,
    record_type LowCardinality(String),
    kind LowCardinality(String),
    name String,
    trace_id String,
    session_id String,
    trajectory_id String,
    user_id String,
    anonymous_id String,
    agent_id String,
    status LowCardinality(String),
    timestamp {TS},
    started_at Nullable({TS}),
    ended_at Nullable({TS}),
    duration_ms Nullable(Float64),
    model LowCardinality(String),
    provider LowCardinality(String),
    input_tokens UInt64,
    output_tokens UInt64,
    cached_tokens UInt64,
    cost_usd Float64,
    error_type String,
    error_message String,
    parent_event_id String,
    source LowCardinality(String),
    properties String,
    metadata String,
    joined UInt8,
    version UInt32,
    processed_at {TS},
    inserted_at {TS} DEFAULT now64(6),
    {PRICING_COLUMNS}
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (project, event_id)
{_DEDUP}
"""

TRAJECTORIES = f"""
CREATE TABLE IF NOT EXISTS {{db}}.trajectories (
    project LowCardinality(String),
    trace_id String,
    trajectory_id String,
    user_id String,
    anonymous_id String,
    agent_id String,
    status LowCardinality(String),
    started_at Nullable({TS}),
    ended_at Nullable({TS}),
    timestamp {TS},
    metadata String,
    version UInt32,
    inserted_at {TS} DEFAULT now64(6)
) ENGINE = ReplacingMergeTree(version)
ORDER BY (project, trace_id)
{_DEDUP}
"""

DEAD_LETTERS = f"""
CREATE TABLE IF NOT EXISTS {{db}}.dead_letters (
    source_topic String,
    partition Int32,
    offset Int64,
    item UInt32,
    key String,
    payload_base64 String,
    payload_preview String,
    reason String,
    error_type LowCardinality(String),
    stage LowCardinality(String),
    received_at {TS},
    inserted_at {TS} DEFAULT now64(6)
) ENGINE = ReplacingMergeTree
ORDER BY (source_topic, partition, offset, item)
{_DEDUP}
"""

# One row per outcome id; a later computation (stream or backfill) replaces it. Partitioned
# by rule_id: part of the id, so every version of a row lands in the same partition (the
# merge that deduplicates works per partition), and dropping a retired rule is one
# ALTER TABLE ... DROP PARTITION.
OUTCOMES = f"""
CREATE TABLE IF NOT EXISTS {{db}}.outcomes (
    project LowCardinality(String),
    outcome_id String,
    rule_id LowCardinality(String),
    rule_revision UInt32,
    rule_name String,
    config_version UInt32,
    trace_id String,
    user_id String,
    anonymous_id String,
    event_ids Array(String),
    value Float64,
    timestamp {TS},
    retracted UInt8,
    computed_at {TS},
    version UInt64,
    inserted_at {TS} DEFAULT now64(6)
) ENGINE = ReplacingMergeTree(version)
PARTITION BY rule_id
ORDER BY (project, outcome_id)
{_DEDUP}
"""

# One row per trajectory: the latest correction request (resolved 0, version = requested_at
# in microseconds) or its resolution (resolved 1, version = the resolved request's + 1), so a
# request newer than a resolution is pending again (meterline/billing/corrections.py).
OUTCOME_CORRECTIONS = f"""
CREATE TABLE IF NOT EXISTS {{db}}.outcome_corrections (
    project LowCardinality(String),
    trace_id String,
    event_id String,
    requested_at {TS},
    resolved UInt8,
    resolved_at {TS},
    version UInt64,
    inserted_at {TS} DEFAULT now64(6)
) ENGINE = ReplacingMergeTree(version)
ORDER BY (project, trace_id)
{_DEDUP}
"""

SEAT_COUNTS = f"""
CREATE TABLE IF NOT EXISTS {{db}}.seat_counts (
    project LowCardinality(String),
    rule_id LowCardinality(String),
    rule_name String,
    period LowCardinality(String),
    period_start Date,
    seats UInt32,
    users Array(String),
    computed_at {TS}
) ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(period_start)
ORDER BY (project, rule_id, period, period_start)
"""

# Filled from the control plane's display_names (see meterline.sinks.clickhouse.display_names); an
# empty display_name means "removed from the file": views show the action name then.
DISPLAY_NAMES = f"""
CREATE TABLE IF NOT EXISTS {{db}}.display_names (
    action String,
    display_name String,
    config_version UInt32,
    updated_at {TS} DEFAULT now64(6)
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY action
"""

# --- Exact analytics without FINAL (docs/architecture.md, "Counting exactly in ClickHouse") ---

#: One narrow row per delivered copy of an event; every copy of an event has the same
#: (project, day, event_id), so merges and the per-event ``argMax`` below collapse them. Its
#: deduplication window lets an insert into ``events`` dropped by its token skip this too.
EVENT_FACTS = f"""
CREATE TABLE IF NOT EXISTS {{db}}.event_facts (
    project LowCardinality(String),
    day Date,
    event_id String,
    kind LowCardinality(String),
    model LowCardinality(String),
    user_id String,
    anonymous_id String,
    input_tokens UInt64,
    output_tokens UInt64,
    cached_tokens UInt64,
    cost_usd Decimal(38, 12),  -- the billed cost (events.billed_cost_usd)
    joined UInt8,
    version UInt32,
    processed_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (project, day, event_id)
{_DEDUP}
"""

#: Rows of ``events`` as ``event_facts`` rows: the materialized view and the backfill.
FACTS_SELECT = """
SELECT project, toDate(timestamp) AS day, event_id, kind, model, user_id, anonymous_id,
       input_tokens, output_tokens, cached_tokens,
       toDecimal128(billed_cost_usd, 12) AS cost_usd,
       joined, version, processed_at
FROM {db}.events
"""

EVENT_FACTS_MV = f"""
CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.event_facts_mv TO {{db}}.event_facts AS
{FACTS_SELECT}
"""

#: One row per event: the copy with the highest version (ties: latest ``processed_at``), the
#: row ``FINAL`` keeps. Filters on project and day reach the primary key of ``event_facts``;
#: a query over a long range should add ``SETTINGS optimize_aggregation_in_order = 1`` (it
#: groups in sort-key order, in bounded memory; a SETTINGS clause inside a view is ignored).
EVENT_LATEST = """
CREATE VIEW IF NOT EXISTS {db}.event_latest AS
SELECT project, day, event_id,
       argMax(kind, (version, processed_at)) AS kind_,
       argMax(model, (version, processed_at)) AS model_,
       argMax(user_id, (version, processed_at)) AS user_id_,
       argMax(anonymous_id, (version, processed_at)) AS anonymous_id_,
       argMax(input_tokens, (version, processed_at)) AS input_tokens_,
       argMax(output_tokens, (version, processed_at)) AS output_tokens_,
       argMax(cached_tokens, (version, processed_at)) AS cached_tokens_,
       argMax(cost_usd, (version, processed_at)) AS cost_usd_,
       argMax(joined, (version, processed_at)) AS joined_
FROM {db}.event_facts
GROUP BY project, day, event_id
"""

USAGE_DAILY = """
CREATE VIEW IF NOT EXISTS {db}.usage_daily AS
SELECT project, day, user_id_ AS user_id, anonymous_id_ AS anonymous_id, model_ AS model,
       kind_ AS kind, count() AS events, sum(input_tokens_) AS input_tokens,
       sum(output_tokens_) AS output_tokens, sum(cached_tokens_) AS cached_tokens,
       sum(cost_usd_) AS cost_usd
FROM {db}.event_latest
GROUP BY project, day, user_id_, anonymous_id_, model_, kind_
"""

EVENT_COUNTS = """
CREATE VIEW IF NOT EXISTS {db}.event_counts AS
SELECT project, day, kind_ AS kind, count() AS events, countIf(joined_ = 1) AS joined,
       countIf(joined_ = 0) AS unjoined
FROM {db}.event_latest
GROUP BY project, day, kind_
"""

#: Tables the sink inserts into (with an insert deduplication window).
SINK_TABLES = ("events", "trajectories", "dead_letters", "outcomes", "outcome_corrections")

#: Statements in creation order (views after the tables they read).
TABLES = {
    "events": EVENTS,
    "trajectories": TRAJECTORIES,
    "dead_letters": DEAD_LETTERS,
    "outcomes": OUTCOMES,
    "outcome_corrections": OUTCOME_CORRECTIONS,
    "seat_counts": SEAT_COUNTS,
    "display_names": DISPLAY_NAMES,
    "event_facts": EVENT_FACTS,
    "event_facts_mv": EVENT_FACTS_MV,
    "event_latest": EVENT_LATEST,
    "usage_daily": USAGE_DAILY,
    "event_counts": EVENT_COUNTS,
}

#: Tables fed by a materialized view, with the statement that fills them from what was
#: written before the view existed (run once, when the table is created).
BACKFILLS = {"event_facts": f"INSERT INTO {{db}}.event_facts {FACTS_SELECT}"}


def statements(database: str) -> list[str]:
    """Database, tables, then views (views read the tables). Every statement is idempotent."""
    db = check_identifier(database)
    tables = [ddl.format(db=db) for ddl in TABLES.values()]
    return [f"CREATE DATABASE IF NOT EXISTS {db}", *tables, *migrations(db), *view_statements(db)]


def migrations(database: str) -> list[str]:
    """Columns added since a table was first created (idempotent ``ADD COLUMN IF NOT
    EXISTS``). Not migrated: ``event_facts_mv`` of a database created before the pricing
    columns keeps copying ``cost_usd`` (recreate it to copy the billed cost)."""
    db = check_identifier(database)
    return [
        f"ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS {name} {kind}" for name, kind in PRICING
    ]


def dedup_settings(database: str) -> list[str]:
    """Turn on insert deduplication for sink tables created before it was in their DDL."""
    db = check_identifier(database)
    return [
        f"ALTER TABLE {db}.{table} MODIFY SETTING non_replicated_deduplication_window = "
        f"{DEDUP_WINDOW}"
        for table in SINK_TABLES
    ]


def backfills(database: str) -> dict[str, str]:
    db = check_identifier(database)
    return {table: sql.format(db=db) for table, sql in BACKFILLS.items()}

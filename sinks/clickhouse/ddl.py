"""Tables the sink writes. Idempotent DDL; ReplacingMergeTree keyed by id as the backstop.

Counting exactly: re-deliveries (at-least-once) and late joins write the same key again;
``FINAL`` (or ``argMax`` by ``version``) reads one row per key.
"""

from __future__ import annotations

import re

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

TS = "DateTime64(6, 'UTC')"

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
    inserted_at {TS} DEFAULT now64(6)
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (project, event_id)
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
"""

DEAD_LETTERS = f"""
CREATE TABLE IF NOT EXISTS {{db}}.dead_letters (
    source_topic String,
    partition Int32,
    offset Int64,
    key String,
    payload_base64 String,
    payload_preview String,
    reason String,
    error_type LowCardinality(String),
    stage LowCardinality(String),
    received_at {TS},
    inserted_at {TS} DEFAULT now64(6)
) ENGINE = ReplacingMergeTree
ORDER BY (source_topic, partition, offset)
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

# Filled from the control plane's display_names (see sinks.clickhouse.display_names); an
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

TABLES = {
    "events": EVENTS,
    "trajectories": TRAJECTORIES,
    "dead_letters": DEAD_LETTERS,
    "outcomes": OUTCOMES,
    "seat_counts": SEAT_COUNTS,
    "display_names": DISPLAY_NAMES,
}


def check_identifier(name: str) -> str:
    """Database names are interpolated into DDL, so they must be plain identifiers."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"invalid ClickHouse identifier {name!r}: use letters, digits and _")
    return name


def statements(database: str) -> list[str]:
    """Database, tables, then views (views read the tables). Every statement is idempotent."""
    from sinks.clickhouse.views import view_statements

    db = check_identifier(database)
    tables = [ddl.format(db=db) for ddl in TABLES.values()]
    return [f"CREATE DATABASE IF NOT EXISTS {db}", *tables, *view_statements(db)]

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
"""

TABLES = {"events": EVENTS, "trajectories": TRAJECTORIES, "dead_letters": DEAD_LETTERS}


def check_identifier(name: str) -> str:
    """Database names are interpolated into DDL, so they must be plain identifiers."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"invalid ClickHouse identifier {name!r}: use letters, digits and _")
    return name


def statements(database: str) -> list[str]:
    db = check_identifier(database)
    return [f"CREATE DATABASE IF NOT EXISTS {db}"] + [ddl.format(db=db) for ddl in TABLES.values()]

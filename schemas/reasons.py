"""Dead-letter reason names shared by the sinks and the stream processors."""

from __future__ import annotations

#: dead-letter reasons pre-bound as label children (others are bound on first use)
REASONS: tuple[str, ...] = (
    "invalid_record",
    "invalid_json",
    "unsupported_schema_version",
    "empty",
    "oversized",
    "rejected_by_clickhouse",
    "impossible_version",
)

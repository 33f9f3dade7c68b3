"""The FINAL answers the analytics views must equal, for the tests."""

from __future__ import annotations

from typing import Any

USAGE_FINAL = """
SELECT project, toDate(timestamp) AS day, user_id, anonymous_id, model, kind, count(),
       sum(input_tokens), sum(output_tokens), sum(cached_tokens),
       sum(toDecimal128(cost_usd, 12))
FROM {db}.events FINAL GROUP BY ALL ORDER BY ALL
"""
USAGE_VIEW = """
SELECT project, day, user_id, anonymous_id, model, kind, events, input_tokens, output_tokens,
       cached_tokens, cost_usd
FROM {db}.usage_daily ORDER BY ALL
"""
COUNTS_FINAL = """
SELECT project, toDate(timestamp) AS day, kind, count(), countIf(joined = 1),
       countIf(joined = 0)
FROM {db}.events FINAL GROUP BY ALL ORDER BY ALL
"""
COUNTS_VIEW = (
    "SELECT project, day, kind, events, joined, unjoined FROM {db}.event_counts ORDER BY ALL"
)


def rows(client: Any, sql: str, db: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in client.query(sql.format(db=db)).result_rows]


def assert_views_equal_final(client: Any, db: str) -> list[tuple[Any, ...]]:
    """Both views equal their FINAL query on ``events``; returns the event_counts rows."""
    usage = rows(client, USAGE_VIEW, db)
    assert usage == rows(client, USAGE_FINAL, db)
    counts = rows(client, COUNTS_VIEW, db)
    assert counts == rows(client, COUNTS_FINAL, db)
    assert usage and counts
    return counts

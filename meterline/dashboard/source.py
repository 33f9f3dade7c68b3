"""Run the dashboard's queries against one clickhouse-connect client."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from meterline.dashboard import queries
from meterline.dashboard.filters import Filters
from meterline.sinks.clickhouse.identifiers import check_identifier


class Source:
    """A client and a database. Queries run one at a time (``lock``).

    One at a time because the client may be shared: ``meterline up`` hands the dashboard the
    pipeline's chDB client, and an HTTP client's session takes one query at a time.
    """

    def __init__(self, client: Any, database: str) -> None:
        self.client = client
        self.database = check_identifier(database)
        self._lock = threading.Lock()

    def rows(
        self,
        sql: str,
        filters: Filters | None = None,
        *,
        bucket_column: str = "timestamp",
        **parts: str,
    ) -> list[tuple[Any, ...]]:
        """``sql`` with ``{db}``/``{bucket}``/``parts`` filled in, ``filters`` bound."""
        text = sql.format(
            db=self.database,
            bucket=filters.bucket_sql(bucket_column) if filters else "",
            **parts,
        )
        params = filters.params() if filters else {}
        with self._lock:
            return list(self.client.query(text, parameters=params).result_rows)

    def missing(self, table: str) -> list[str]:
        """Columns of :data:`queries.REQUIRED_COLUMNS` that ``table`` lacks (all if absent)."""
        required = queries.REQUIRED_COLUMNS[table]
        with self._lock:
            found = self.client.query(
                queries.PRESENT_COLUMNS, parameters={"db": self.database, "tables": [table]}
            ).result_rows
        return sorted(required - {str(name) for _, name in found})


def utc(value: Any) -> datetime:
    """A ClickHouse DateTime/Date as an aware UTC datetime."""
    if not isinstance(value, datetime):  # a Date
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso(value: Any) -> str:
    return utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")

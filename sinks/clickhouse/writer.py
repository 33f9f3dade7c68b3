"""Batch writes into ClickHouse through clickhouse-connect."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sinks.clickhouse.ddl import check_identifier, statements
from sinks.clickhouse.rows import COLUMNS
from sinks.errors import SinkWriteError

log = logging.getLogger(__name__)


class ClickHouseWriter:
    """Inserts row batches into meterline's tables in ``database``.

    Blocking: ``insert`` returns once ClickHouse acknowledged the insert, or raises
    :class:`SinkWriteError` (nothing is retried here; the caller keeps the batch).
    """

    def __init__(self, client: Any, database: str) -> None:
        self.client = client
        self.database = check_identifier(database)

    def ensure_schema(self) -> None:
        """Create the database and tables if missing (safe to run on every start)."""
        for ddl in statements(self.database):
            self.client.command(ddl)

    def insert(self, table: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        try:
            self.client.insert(
                table, rows, column_names=list(COLUMNS[table]), database=self.database
            )
        except Exception as exc:  # clickhouse-connect raises several unrelated types
            raise SinkWriteError(f"insert of {len(rows)} rows into {table} failed: {exc}") from exc

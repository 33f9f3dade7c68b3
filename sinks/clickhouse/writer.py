"""Batch writes into ClickHouse through clickhouse-connect.

The sink's hot tables (:data:`ARROW_TABLES`) are inserted in the Arrow format: the rows'
columns become Arrow arrays in C, of the types the table's columns have now (an operator may
have altered one; a type Arrow inserts do not handle means a Native insert), where
clickhouse-connect's Native encoding walks every value in Python (figures:
docs/benchmarks.md, the sink's section). The stored rows are equal to a Native insert's
(``tests/sinks/test_writer.py``). The other tables keep the Native insert.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from meterline.sinks.clickhouse.ddl import backfills, dedup_settings, statements
from meterline.sinks.clickhouse.identifiers import check_identifier
from meterline.sinks.clickhouse.rejections import is_data_error
from meterline.sinks.clickhouse.rows import COLUMNS
from meterline.sinks.errors import SinkRowsRejected, SinkWriteError

log = logging.getLogger(__name__)


class InsertTokens:
    """``insert_deduplication_token`` per table for the messages of one consumed batch.

    A token is a digest of the table name and, per source topic-partition, the first and last
    offset and the bytes of every message whose row goes to that table. Equal tokens mean
    byte-identical input, so ClickHouse drops only a true repeat (within the table's
    deduplication window): the retry of an insert that failed on the client after the server
    applied it, or a replay that consumed exactly the same messages. A replay split
    differently (the usual case after a restart) gets new tokens and is absorbed by
    ReplacingMergeTree instead. A topic recreated with reused offsets (the embedded broker
    keeps topics in memory) has different bytes, hence different tokens.
    """

    def __init__(self) -> None:
        self._ranges: dict[str, dict[tuple[str, int], list[Any]]] = {}

    def add(self, table: str, topic: str, partition: int, offset: int, value: bytes) -> None:
        """Record one message whose row goes to ``table`` (offsets ascend per partition)."""
        entry = self._ranges.setdefault(table, {}).get((topic, partition))
        if entry is None:
            entry = [offset, offset, hashlib.blake2b(digest_size=16)]
            self._ranges[table][(topic, partition)] = entry
        entry[1] = offset
        entry[2].update(len(value).to_bytes(8, "little"))
        entry[2].update(value)

    def token(self, table: str) -> str | None:
        """The token for ``table``'s insert, or None when no message went to it."""
        ranges = self._ranges.get(table)
        if not ranges:
            return None
        digest = hashlib.blake2b(table.encode(), digest_size=16)
        for (topic, partition), (first, last, content) in sorted(ranges.items()):
            digest.update(f"\0{topic}\0{partition}\0{first}\0{last}\0".encode())
            digest.update(content.digest())
        return f"{table}-{digest.hexdigest()}"


#: The tables inserted as Arrow: the sink's hot ones.
ARROW_TABLES = ("events", "trajectories")
#: Arrow type of each ClickHouse column type an Arrow insert writes (inside ``Nullable`` and
#: ``LowCardinality``); a table with a column of any other type is inserted as Native.
_ARROW_TYPES: dict[str, pa.DataType] = {
    "String": pa.string(),
    "UInt8": pa.uint8(),
    "UInt16": pa.uint16(),
    "UInt32": pa.uint32(),
    "UInt64": pa.uint64(),
    "Int8": pa.int8(),
    "Int16": pa.int16(),
    "Int32": pa.int32(),
    "Int64": pa.int64(),
    "Float32": pa.float32(),
    "Float64": pa.float64(),
    "DateTime64(6, 'UTC')": pa.timestamp("us", tz="UTC"),
}
_WRAPPERS = ("Nullable(", "LowCardinality(")


def arrow_type(clickhouse_type: str) -> pa.DataType | None:
    """The Arrow type an Arrow insert sends for a ClickHouse column type, or None for a type
    it does not handle."""
    inner = clickhouse_type
    while inner.startswith(_WRAPPERS) and inner.endswith(")"):
        inner = inner[inner.index("(") + 1 : -1]
    return _ARROW_TYPES.get(inner)


def arrow_table(schema: pa.Schema, rows: Sequence[Sequence[Any]]) -> pa.Table:
    """``rows`` as an Arrow table of ``schema`` (one field per column, in order).

    Raises:
        ValueError: a value its column's type cannot hold (out of range, not UTF-8, the
            wrong type) or a row of the wrong width, naming the column: the rows' fault.
    """
    try:
        columns = list(zip(*rows, strict=True))
    except ValueError as exc:
        raise ValueError(f"rows of different widths: {exc}") from None
    arrays = []
    for column, f in zip(columns, schema, strict=True):
        try:
            arrays.append(pa.array(column, type=f.type))
        except (pa.ArrowException, ValueError, TypeError, OverflowError) as exc:
            raise ValueError(f"column {f.name} ({f.type}): {exc}") from None
    return pa.Table.from_arrays(arrays, schema=schema)


class ClickHouseWriter:
    """Inserts row batches into meterline's tables in ``database``.

    Blocking: ``insert`` returns once ClickHouse acknowledged the insert, or raises
    :class:`SinkWriteError` (nothing is retried here; the caller keeps the batch), or its
    subclass :class:`SinkRowsRejected` when the rows' data is at fault
    (:func:`~meterline.sinks.clickhouse.rejections.is_data_error`).
    Idempotency: an insert repeated with the same ``dedup_token`` is dropped by ClickHouse;
    any other repeat of a row is collapsed by ReplacingMergeTree (read with ``FINAL`` or
    through the analytics views).
    """

    def __init__(self, client: Any, database: str) -> None:
        self.client = client
        self.database = check_identifier(database)
        #: per Arrow table: the schema of its columns' current types (None: insert as Native);
        #: read on the first insert and again after a failed one (an operator's ALTER)
        self._schemas: dict[str, pa.Schema | None] = {}

    def ensure_schema(self) -> None:
        """Create the database, tables and views if missing (safe to run on every start).

        A table fed by a materialized view is back-filled once, when it is created, from the
        rows written before; rows inserted meanwhile arrive twice and collapse like any
        other repeat.
        """
        fills = backfills(self.database)
        created = [t for t in fills if not self._exists(t)]
        for ddl in statements(self.database) + dedup_settings(self.database):
            self.client.command(ddl)
        for table in created:
            log.info("sink: back-filling %s.%s", self.database, table)
            self.client.command(fills[table])

    def _exists(self, table: str) -> bool:
        return bool(self.client.command(f"EXISTS TABLE {self.database}.{table}"))

    def insert(
        self, table: str, rows: Sequence[Sequence[Any]], *, dedup_token: str | None = None
    ) -> None:
        if not rows:
            return
        settings = {"insert_deduplication_token": dedup_token} if dedup_token else None
        try:
            schema = self._arrow_schema(table) if table in ARROW_TABLES else None
            if schema is not None:
                self.client.insert_arrow(
                    table, arrow_table(schema, rows), database=self.database, settings=settings
                )
            else:
                self.client.insert(
                    table,
                    rows,
                    column_names=list(COLUMNS[table]),
                    database=self.database,
                    settings=settings,
                )
        except Exception as exc:  # clickhouse-connect raises several unrelated types
            self._schemas.pop(table, None)  # read the column types again before the retry
            error = SinkRowsRejected if is_data_error(exc) else SinkWriteError
            raise error(f"insert of {len(rows)} rows into {table} failed: {exc}") from exc

    def _arrow_schema(self, table: str) -> pa.Schema | None:
        """The Arrow schema of ``table``'s sink columns from their current ClickHouse types
        (None when one has a type Arrow inserts do not handle: Native then)."""
        if table in self._schemas:
            return self._schemas[table]
        found = self.client.query(
            "SELECT name, type FROM system.columns WHERE database = %(db)s AND table = %(t)s",
            parameters={"db": self.database, "t": table},
        ).result_rows
        types = {str(name): str(kind) for name, kind in found}
        fields = [(name, arrow_type(types.get(name, ""))) for name in COLUMNS[table]]
        schema = None if any(t is None for _, t in fields) else pa.schema(fields)
        if schema is None:
            log.info("sink: %s.%s is inserted as Native (a column type Arrow inserts do not "
                     "handle: %s)", self.database, table, types)  # fmt: skip
        self._schemas[table] = schema
        return schema

"""The writer's Arrow inserts (events, trajectories) against clickhouse-connect's Native
insert: the same rows stored, and a value a column cannot hold refused as the rows' fault."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from meterline.demo.traffic import generate
from meterline.schemas import (
    ActionEvent,
    EnrichedEvent,
    TelemetryEvent,
    TrajectoryRecord,
    TrajectoryState,
    encode,
)
from meterline.schemas.codec import encode_enriched, encode_state
from meterline.sinks.clickhouse.rows import (
    COLUMNS,
    enriched_row,
    event_row,
    state_row,
    trajectory_row,
)
from meterline.sinks.clickhouse.writer import ARROW_TABLES, ClickHouseWriter, arrow_type
from meterline.sinks.errors import SinkRowsRejected

PROCESSED_AT = b'"2026-11-28T00:00:00.123456Z"'


def generated_rows() -> dict[str, list[tuple[Any, ...]]]:
    records = generate(project="p", events=2_000).records
    trajectories = {r.trace_id: encode(r) for r in records if r.type == "trajectory"}
    events = [
        enriched_row(encode_enriched(encode(r), trajectories.get(r.trace_id), 2, PROCESSED_AT))
        for r in records
        if r.type != "trajectory"
    ]  # fmt: skip
    states = [state_row(encode_state(t, 1)) for t in trajectories.values()]
    return {"events": events, "trajectories": states}


def edge_rows() -> dict[str, list[tuple[Any, ...]]]:
    """Values at the columns' limits: counts of 2^64 - 1, costs of 1e12, no durations or
    spans, timestamps of 2000 and 2299, unicode, empty and long strings."""
    early = datetime(2000, 1, 1, tzinfo=UTC)
    late = datetime(2299, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    events = [
        ActionEvent(event_id="max", name="n" * 512, kind="llm_call", model="m",
                    input_tokens=2**64 - 1, output_tokens=2**63, cached_tokens=0,
                    cost_usd=1e12, duration_ms=0.0, started_at=early, ended_at=late,
                    timestamp=late, properties={"ü": "日本", "n": -(2**63)},
                    error_message="line\nbreak"),
        ActionEvent(event_id="none", name="x", timestamp=early, duration_ms=None),
        TelemetryEvent(event_id="🙂", event_type="t", trajectory_id="tr", timestamp=early),
    ]  # fmt: skip
    trajectory = TrajectoryRecord(trace_id="t", started_at=None, ended_at=late, metadata={})
    return {
        "events": [event_row(EnrichedEvent(event=e, version=1)) for e in events],
        # the column's maximum, beyond the versions the sink accepts from Kafka
        # (meterline.schemas.versions)
        "trajectories": [trajectory_row(TrajectoryState(trajectory=trajectory, version=2**32 - 1))],
    }


def stored(writer: ClickHouseWriter, table: str) -> list[tuple[Any, ...]]:
    key = "project, event_id" if table == "events" else "project, trace_id"
    sql = f"SELECT * EXCEPT inserted_at FROM {writer.database}.{table} ORDER BY {key}"
    return list(writer.client.query(sql).result_rows)


@pytest.mark.parametrize("rows", [generated_rows, edge_rows], ids=["generated", "edges"])
def test_arrow_inserts_store_what_the_native_insert_stores(
    writer: ClickHouseWriter, rows: Any
) -> None:
    ch, db = writer.client, writer.database
    for table, batch in rows().items():
        assert table in ARROW_TABLES
        writer.insert(table, batch)
        arrow = stored(writer, table)
        ch.command(f"TRUNCATE TABLE {db}.{table}")
        ch.insert(table, batch, column_names=list(COLUMNS[table]), database=db)  # Native
        assert stored(writer, table) == arrow
        assert len(arrow) == len({row[:2] for row in batch})  # repeats collapse in the part


def test_a_value_no_column_can_hold_is_the_rows_fault(writer: ClickHouseWriter) -> None:
    """Refused as :class:`SinkRowsRejected`, so the sink isolates the row and dead-letters
    it instead of retrying the batch forever."""
    (good,) = edge_rows()["trajectories"]
    over = (*good[:-1], 2**32)  # version beyond UInt32
    with pytest.raises(SinkRowsRejected, match="trajectories"):
        writer.insert("trajectories", [good, over])
    surrogate = (*good[:2], "a\ud800", *good[3:])  # not encodable as UTF-8
    with pytest.raises(SinkRowsRejected):
        writer.insert("trajectories", [surrogate])
    with pytest.raises(SinkRowsRejected):
        writer.insert("trajectories", [good, good[:-1]])  # a row of the wrong width
    writer.insert("trajectories", [good])
    assert len(stored(writer, "trajectories")) == 1


def test_column_types_arrow_inserts_do_not_handle_fall_back_to_native(
    writer: ClickHouseWriter,
) -> None:
    assert arrow_type("LowCardinality(String)") == arrow_type("String")
    assert arrow_type("Nullable(DateTime64(6, 'UTC'))") is not None
    assert arrow_type("Decimal(38, 12)") is None and arrow_type("DateTime64(3)") is None
    db = writer.database
    writer.client.command(f"ALTER TABLE {db}.trajectories MODIFY COLUMN version UInt128")
    (row,) = edge_rows()["trajectories"]
    writer.insert("trajectories", [row])  # as Native, which knows UInt128
    assert stored(writer, "trajectories")[0][-1] == 2**32 - 1

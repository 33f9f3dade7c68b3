"""Which insert failures are the data's fault (``sinks/clickhouse/rejections.py``), on the
errors chDB and clickhouse-connect really raise."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from meterline.schemas import ActionEvent, EnrichedEvent
from meterline.sinks.clickhouse.rejections import is_data_error
from meterline.sinks.clickhouse.rows import event_row
from meterline.sinks.clickhouse.writer import ClickHouseWriter
from meterline.sinks.errors import SinkRowsRejected, SinkWriteError

pytestmark = pytest.mark.integration


def row(event_id: str, cost: float = 0.5, output_tokens: int = 1) -> tuple[object, ...]:
    event = ActionEvent(
        event_id=event_id,
        name="n",
        kind="llm_call",
        model="m",
        timestamp=datetime(2026, 11, 1, tzinfo=UTC),
        output_tokens=output_tokens,
        cost_usd=cost,
    )
    return event_row(EnrichedEvent(event=event, version=1))


def test_rows_a_column_or_constraint_refuses_are_rejections(writer: ClickHouseWriter) -> None:
    db, client = writer.database, writer.client
    client.command(f"ALTER TABLE {db}.events ADD CONSTRAINT small_cost CHECK cost_usd < 100")
    client.command(f"ALTER TABLE {db}.events MODIFY COLUMN output_tokens UInt32")
    with pytest.raises(SinkRowsRejected, match="Code: 469"):  # server side: VIOLATED_CONSTRAINT
        writer.insert("events", [row("a"), row("b", cost=1_000)])
    with pytest.raises(SinkRowsRejected, match="output_tokens"):  # client side: encoding
        writer.insert("events", [row("c", output_tokens=2**40)])
    writer.insert("events", [row("d")])


def test_failures_that_are_not_the_datas_are_plain_write_errors(
    writer: ClickHouseWriter,
) -> None:
    writer.client.command(f"DROP TABLE {writer.database}.events")
    with pytest.raises(SinkWriteError) as info:
        writer.insert("events", [row("a")])
    assert not isinstance(info.value, SinkRowsRejected)
    refused = OperationalError("Error HTTPConnectionPool: Connection refused")
    assert not is_data_error(refused)
    assert not is_data_error(DatabaseError("Code: 241. MEMORY_LIMIT_EXCEEDED", code=241))
    assert is_data_error(DatabaseError("Code: 407. DECIMAL_OVERFLOW", code=407))

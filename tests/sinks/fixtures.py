"""A fresh meterline schema on the session chDB engine, per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from sinks.clickhouse.writer import ClickHouseWriter


@pytest.fixture
def writer(clickhouse: Any) -> Iterator[ClickHouseWriter]:
    db = f"t_{uuid.uuid4().hex[:10]}"
    w = ClickHouseWriter(clickhouse, db)
    w.ensure_schema()
    yield w
    clickhouse.command(f"DROP DATABASE IF EXISTS {db}")

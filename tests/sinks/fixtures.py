"""A fresh ClickHouse database per test on the session chDB engine, with meterline's schema."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from meterline.sinks.clickhouse.writer import ClickHouseWriter


@pytest.fixture
def writer(clickhouse: Any) -> Iterator[ClickHouseWriter]:
    w = ClickHouseWriter(clickhouse, f"db_{uuid.uuid4().hex[:10]}")
    w.ensure_schema()
    yield w
    clickhouse.command(f"DROP DATABASE IF EXISTS {w.database}")

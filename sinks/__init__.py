"""meterline sinks: batch consumers from Kafka into ClickHouse (clickhouse-connect)."""

from sinks.clickhouse.connection import connect, redact_url
from sinks.clickhouse.writer import ClickHouseWriter
from sinks.consumer import ClickHouseSink, SinkStats
from sinks.errors import ConfigurationError, SinkError, SinkWriteError

__all__ = [
    "ClickHouseSink",
    "ClickHouseWriter",
    "ConfigurationError",
    "SinkError",
    "SinkStats",
    "SinkWriteError",
    "connect",
    "redact_url",
]

"""meterline sinks: batch consumers from Kafka into ClickHouse (clickhouse-connect)."""

from meterline.sinks.clickhouse.connection import connect, redact_url
from meterline.sinks.clickhouse.writer import ClickHouseWriter
from meterline.sinks.consumer import ClickHouseSink
from meterline.sinks.errors import ConfigurationError, SinkError, SinkWriteError
from meterline.sinks.stats import SinkStats

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

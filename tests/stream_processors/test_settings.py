from __future__ import annotations

from pathlib import Path

from stream_processors.settings import Settings


def test_defaults_are_embedded() -> None:
    s = Settings.from_env({})
    assert s.kafka_bootstrap is None and s.clickhouse_url is None
    assert s.effective_clickhouse_url.startswith("chdb:///")
    assert s.effective_clickhouse_url.endswith(".meterline/clickhouse")


def test_env_round_trip() -> None:
    s = Settings(
        kafka_bootstrap="k:9092",
        clickhouse_url="http://ch:8123",
        data_dir=Path("/d"),
        topic_prefix="x",
        partitions=8,
        database="db",
    )
    assert Settings.from_env(s.to_env()) == s


def test_flags_override_env() -> None:
    s = Settings.from_env({"METERLINE_KAFKA_BOOTSTRAP": "env:1"})
    assert (
        s.with_overrides(kafka_bootstrap="flag:2", clickhouse_url=None).kafka_bootstrap == "flag:2"
    )
    assert s.with_overrides(kafka_bootstrap=None).kafka_bootstrap == "env:1"

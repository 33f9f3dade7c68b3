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


def test_metrics_port_log_format_and_run_dir_from_env() -> None:
    assert Settings.from_env({}).metrics_port == 0  # on, ephemeral port
    assert Settings.from_env({"METERLINE_METRICS_PORT": "off"}).metrics_port is None
    s = Settings.from_env(
        {
            "METERLINE_METRICS_PORT": "9464",
            "METERLINE_METRICS_HOST": "0.0.0.0",
            "METERLINE_LOG_FORMAT": "JSON",
            "METERLINE_DATA_DIR": "/d",
        }
    )
    assert (s.metrics_port, s.metrics_host, s.log_format) == (9464, "0.0.0.0", "json")
    assert s.effective_run_dir == Path("/d/run")
    assert Settings.from_env(s.to_env()) == s
    off = Settings(metrics_port=None, run_dir=Path("/r"))
    assert Settings.from_env(off.to_env()) == off


def test_a_bad_metrics_port_is_refused() -> None:
    import pytest

    with pytest.raises(ValueError, match="METERLINE_METRICS_PORT"):
        Settings.from_env({"METERLINE_METRICS_PORT": "70000"})

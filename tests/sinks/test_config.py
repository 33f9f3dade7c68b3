"""The sink's own config: built from Settings by the shell, secrets out of its repr."""

from __future__ import annotations

from meterline.settings import Settings
from meterline.sinks.config import SinkConfig


def test_settings_build_the_sink_config() -> None:
    settings = Settings(
        kafka_bootstrap="k:9092",
        clickhouse_url="http://u:secret@ch:8123",
        sink_reject_max_ratio=0.0,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="u",
        kafka_sasl_password="hunter2",
    )
    config = settings.sink_config()
    assert config.kafka_bootstrap == "k:9092"
    assert config.group_id == settings.sink_group
    assert config.topics == settings.topics
    assert config.reject_max_ratio is None  # 0 = no ratio limit
    assert config.consumer_config() == {
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
        **settings.kafka_client_config(),
    }
    assert "secret" not in repr(config) and "hunter2" not in repr(config)


def test_defaults() -> None:
    config = SinkConfig(clickhouse_url="chdb:///tmp/x")
    assert config.kafka_bootstrap is None and config.max_rejected == 100

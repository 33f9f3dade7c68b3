"""The processor's own config: built from Settings by the shell, secrets out of its repr."""

from __future__ import annotations

from pathlib import Path

from meterline.settings import Settings
from meterline.stream_processors.config import ProcessorConfig


def test_settings_build_the_processor_config() -> None:
    settings = Settings(
        kafka_bootstrap="k:9092",
        data_dir=Path("/d"),
        partitions=8,
        dlq_max_ratio=0.0,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="u",
        kafka_sasl_password="hunter2",
    )
    config = settings.processor_config()
    assert (config.kafka_bootstrap, config.partitions) == ("k:9092", 8)
    assert config.topics == settings.topics and config.app_id == settings.app_id
    assert config.data_dir == settings.faust_datadir
    assert config.dlq_max_ratio is None  # 0 = never quarantine
    assert config.client_config() == {
        "bootstrap.servers": "k:9092", **settings.kafka_client_config()
    }
    assert config.changelog_topics[0] == "meterline-processor-dedupe-window-changelog"
    for text in (repr(config), str(config)):
        assert "hunter2" not in text and "sasl.password" in text


def test_the_defaults_are_the_settings_defaults() -> None:
    assert Settings().processor_config() == ProcessorConfig()

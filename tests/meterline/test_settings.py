from __future__ import annotations

from pathlib import Path

from meterline.settings import Settings


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


ACCESS_ENV = {
    "METERLINE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "METERLINE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
    "METERLINE_KAFKA_SASL_USERNAME": "svc",
    "METERLINE_KAFKA_SASL_PASSWORD": "kafka-pw-123",
    "METERLINE_KAFKA_SSL_CA_LOCATION": "/etc/ssl/ca.pem",
    "METERLINE_CLICKHOUSE_URL": "https://svc:ch-pw-456@ch:8443/?verify=true",
}


def test_secrets_never_appear_in_repr_or_str() -> None:
    s = Settings.from_env(ACCESS_ENV)
    for text in (repr(s), str(s), f"{s}"):
        assert "kafka-pw-123" not in text and "ch-pw-456" not in text
        assert "kafka_sasl_password='***'" in text and "svc:***@ch:8443" in text


def test_access_settings_round_trip_to_child_processes() -> None:
    s = Settings.from_env(ACCESS_ENV)
    assert Settings.from_env(s.to_env()) == s


def test_kafka_client_config_for_librdkafka() -> None:
    assert Settings().kafka_client_config() == {}
    assert Settings.from_env(ACCESS_ENV).kafka_client_config() == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "svc",
        "sasl.password": "kafka-pw-123",
        "ssl.ca.location": "/etc/ssl/ca.pem",
    }
    # a mechanism alone implies SASL_PLAINTEXT
    s = Settings(kafka_sasl_mechanism="plain", kafka_sasl_username="u", kafka_sasl_password="p")
    assert s.kafka_client_config()["security.protocol"] == "SASL_PLAINTEXT"


def test_faust_gets_the_same_credentials(tmp_path: Path) -> None:
    import faust

    from meterline.stream_processors.worker import create_app

    assert Settings().faust_credentials() is None
    s = Settings(
        kafka_bootstrap="k:9092",
        data_dir=tmp_path,
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="svc",
        kafka_sasl_password="pw",
    )
    creds = s.faust_credentials()
    assert isinstance(creds, faust.SASLCredentials)
    assert (creds.username, creds.password, creds.mechanism.value) == ("svc", "pw", "SCRAM-SHA-512")
    app = create_app(s.processor_config())
    assert isinstance(app.conf.broker_credentials, faust.SASLCredentials)


def test_sdk_init_reads_access_from_the_same_variables() -> None:
    from meterline.producers.config import access_config_from_env

    assert access_config_from_env({}) == {}
    conf = access_config_from_env(ACCESS_ENV)
    assert conf["sasl.username"] == "svc" and conf["security.protocol"] == "SASL_SSL"


def test_the_sinks_rejection_limits_come_from_the_environment() -> None:
    s = Settings.from_env(
        {"METERLINE_SINK_MAX_REJECTED": "5000", "METERLINE_SINK_REJECT_MAX_RATIO": "0"}
    )
    assert (s.sink_max_rejected, s.sink_reject_max_ratio) == (5000, 0.0)
    assert Settings.from_env(s.to_env()) == s
    assert (Settings().sink_max_rejected, Settings().sink_reject_max_ratio) == (100, 0.5)

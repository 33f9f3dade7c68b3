"""The process-wide SDK client: ``init`` once, or configure through the environment."""

from __future__ import annotations

import os
import threading
from typing import Any

from producers.errors import NotConfigured
from producers.sdk import MeterlineClient

_client: MeterlineClient | None = None
_client_lock = threading.Lock()


def init(
    bootstrap_servers: str | None = None,
    *,
    project: str | None = None,
    topic_prefix: str | None = None,
    **options: Any,
) -> MeterlineClient:
    """Set up the process-wide client (replacing, and closing, any previous one).

    Unset arguments come from ``METERLINE_KAFKA_BOOTSTRAP``, ``METERLINE_PROJECT`` and
    ``METERLINE_TOPIC_PREFIX``; Kafka access (TLS, SASL) from ``METERLINE_KAFKA_SECURITY_*``
    variables (:func:`access_config_from_env`), under any ``config=`` given.
    ``options`` go to :class:`MeterlineClient`.
    """
    bootstrap = bootstrap_servers or os.environ.get("METERLINE_KAFKA_BOOTSTRAP")
    if not bootstrap:
        raise NotConfigured(
            "no Kafka bootstrap servers: pass producers.init(bootstrap_servers=...) "
            "or set METERLINE_KAFKA_BOOTSTRAP"
        )
    options["config"] = {**access_config_from_env(), **(options.get("config") or {})}
    client = MeterlineClient.from_kafka(
        bootstrap,
        topic_prefix=topic_prefix or os.environ.get("METERLINE_TOPIC_PREFIX", "meterline"),
        project=project or os.environ.get("METERLINE_PROJECT", "default"),
        **options,
    )
    old = set_client(client)
    if old is not None:
        old.close()
    return client


def set_client(client: MeterlineClient | None) -> MeterlineClient | None:
    """Install ``client`` as the process-wide client; return (without closing) the old one."""
    global _client
    with _client_lock:
        old, _client = _client, client
    return old


def get_client() -> MeterlineClient:
    """The process-wide client, created from the environment on first use."""
    client = _client
    if client is None:
        with _client_lock:
            client = _client
        if client is None:
            client = init()
    return client


def flush(timeout: float = 30.0) -> int:
    """Flush the process-wide client (see :meth:`MeterlineClient.flush`)."""
    return get_client().flush(timeout)


def kafka_access_config(
    security_protocol: str | None = None,
    sasl_mechanism: str | None = None,
    sasl_username: str | None = None,
    sasl_password: str | None = None,
    ssl_ca_location: str | None = None,
) -> dict[str, str]:
    """librdkafka access settings; empty means PLAINTEXT. A SASL mechanism without a
    protocol means SASL_PLAINTEXT, or SASL_SSL when a CA bundle is given."""
    conf: dict[str, str] = {}
    protocol = security_protocol
    if protocol is None and sasl_mechanism:
        protocol = "SASL_SSL" if ssl_ca_location else "SASL_PLAINTEXT"
    if protocol:
        conf["security.protocol"] = protocol.upper()
    if sasl_mechanism:
        conf["sasl.mechanism"] = sasl_mechanism.upper()
    if sasl_username is not None:
        conf["sasl.username"] = sasl_username
    if sasl_password is not None:
        conf["sasl.password"] = sasl_password
    if ssl_ca_location:
        conf["ssl.ca.location"] = ssl_ca_location
    return conf


def access_config_from_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """:func:`kafka_access_config` from ``METERLINE_KAFKA_SECURITY_PROTOCOL``,
    ``..._SASL_MECHANISM``, ``..._SASL_USERNAME``, ``..._SASL_PASSWORD``,
    ``..._SSL_CA_LOCATION`` (the same variables the pipeline reads)."""
    env = os.environ if environ is None else environ

    def get(name: str) -> str | None:
        return env.get("METERLINE_KAFKA_" + name) or None

    return kafka_access_config(
        get("SECURITY_PROTOCOL"),
        get("SASL_MECHANISM"),
        get("SASL_USERNAME"),
        get("SASL_PASSWORD"),
        get("SSL_CA_LOCATION"),
    )

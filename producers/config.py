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
    ``METERLINE_TOPIC_PREFIX``. ``options`` go to :class:`MeterlineClient`.
    """
    bootstrap = bootstrap_servers or os.environ.get("METERLINE_KAFKA_BOOTSTRAP")
    if not bootstrap:
        raise NotConfigured(
            "no Kafka bootstrap servers: pass producers.init(bootstrap_servers=...) "
            "or set METERLINE_KAFKA_BOOTSTRAP"
        )
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

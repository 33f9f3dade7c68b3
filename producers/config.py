"""The process-wide SDK client: ``init`` once, or configure through the environment."""

from __future__ import annotations

import logging
import os
from typing import Any

from meterline.producers import current, safety
from meterline.producers.current import current_client, set_client
from meterline.producers.errors import NotConfigured
from meterline.producers.sdk import MeterlineClient
from meterline.schemas.access import kafka_access_config

__all__ = [
    "access_config_from_env",
    "current_client",
    "flush",
    "get_client",
    "init",
    "set_client",
    "shutdown",
]

log = logging.getLogger("producers")
_NOT_CONFIGURED = (
    "no Kafka bootstrap servers and no gateway endpoint: pass "
    "meterline.init(bootstrap_servers=...) or meterline.init(endpoint=..., api_key=...), "
    "or set METERLINE_KAFKA_BOOTSTRAP or METERLINE_ENDPOINT (with METERLINE_API_KEY)"
)
_NO_API_KEY = (
    "a gateway endpoint without an API key: pass meterline.init(api_key=...) or set "
    "METERLINE_API_KEY"
)


def init(
    bootstrap_servers: str | None = None,
    *,
    endpoint: str | None = None,
    api_key: str | None = None,
    project: str | None = None,
    topic_prefix: str | None = None,
    strict: bool | None = None,
    auto_instrument: bool = True,
    **options: Any,
) -> MeterlineClient:
    """Set up the process-wide client (replacing, and closing, any previous one).

    Two transports: Kafka (``bootstrap_servers``) or the ingestion gateway over HTTP
    (``endpoint`` and ``api_key``: :class:`~meterline.producers.http.HttpSink`, whose
    ``http=HttpConfig(...)`` is an option here; the key's project is stamped on records
    without one). An argument given wins (both at once: ``ValueError``); else
    ``METERLINE_ENDPOINT`` (with ``METERLINE_API_KEY``), else ``METERLINE_KAFKA_BOOTSTRAP``.
    Other unset arguments come from ``METERLINE_PROJECT`` and ``METERLINE_TOPIC_PREFIX``
    (Kafka only); Kafka access (TLS, SASL) from ``METERLINE_KAFKA_SECURITY_*`` variables
    (:func:`access_config_from_env`), under any ``config=`` given. ``options`` go to
    :class:`MeterlineClient`. An endpoint without an API key warns (every request is then
    refused: records spooled or counted failed), or raises :class:`NotConfigured` in strict
    mode.

    Without a bootstrap server or endpoint it warns once and returns the stand-in client,
    which records nothing and counts every call in ``stats.dropped``; with ``strict=True`` (or
    ``METERLINE_STRICT=1``) it raises :class:`NotConfigured`, and so do the tracking APIs
    for their own failures. ``auto_instrument`` (default on) records every call of the
    installed official ``openai`` / ``anthropic`` clients
    (:func:`meterline.producers.llm.instrument_all`,
    once per process).
    """
    if strict is not None:
        safety.set_strict(strict)
    if bootstrap_servers and endpoint:
        raise ValueError("pass bootstrap_servers (Kafka) or endpoint (HTTP), not both")
    env = os.environ
    bootstrap = bootstrap_servers
    if not bootstrap and not endpoint:
        endpoint = env.get("METERLINE_ENDPOINT") or None
        bootstrap = None if endpoint else env.get("METERLINE_KAFKA_BOOTSTRAP")
    project = project or env.get("METERLINE_PROJECT", "default")
    if endpoint:
        api_key = api_key or env.get("METERLINE_API_KEY") or None
        if not api_key:
            if safety.is_strict():
                raise NotConfigured(_NO_API_KEY)
            log.warning("meterline: %s; the gateway refuses every request", _NO_API_KEY)
        client = MeterlineClient.from_http(endpoint, api_key, project=project, **options)
    elif bootstrap:
        options["config"] = {**access_config_from_env(), **(options.get("config") or {})}
        client = MeterlineClient.from_kafka(
            bootstrap,
            topic_prefix=topic_prefix or env.get("METERLINE_TOPIC_PREFIX", "meterline"),
            project=project, **options,
        )  # fmt: skip
    else:
        if safety.is_strict():
            raise NotConfigured(_NOT_CONFIGURED)
        stand_in = current.stand_in()
        stand_in.warn_once()
        return stand_in
    old = set_client(client)
    if old is not None:
        old.close()
    if auto_instrument:
        _instrument_llm_clients()
    return client


_instrumented: list[str] | None = None
_LLM_PROVIDERS = ("openai", "anthropic")


def _instrument_llm_clients() -> list[str]:
    """Instrument the installed official LLM clients once per process (later ``init`` calls
    reuse it: the recorder emits to whichever client is process-wide at each call).

    A client library already imported is patched now; one installed but not yet imported is
    patched right after the application imports it (:mod:`meterline.producers.llm.hook`), so
    ``init``
    does not pay for importing ``openai`` / ``anthropic`` (seconds) an agent may not use.
    Returns the providers patched or waiting for their import."""
    global _instrumented
    if _instrumented is None:
        _instrumented = []
        from meterline.producers.llm.hook import instrument_when_imported

        for provider in _LLM_PROVIDERS:
            try:
                if instrument_when_imported(provider):
                    _instrumented.append(provider)
            except Exception as exc:  # a client library we cannot patch never breaks init
                log.warning("meterline: LLM auto-instrumentation of %s failed: %r",
                            provider, exc)
    return _instrumented


def shutdown(timeout: float = 10.0) -> int:
    """Flush and close the process-wide client within ``timeout`` seconds; later records go
    to the stand-in (dropped, counted). Returns how many records were not delivered."""
    old = set_client(None)
    return old.close(timeout) if old is not None else 0


def get_client() -> MeterlineClient:
    """The process-wide client, created from the environment on first use.

    Nothing configured: the stand-in client (records nothing, counts, warns once), or
    :class:`NotConfigured` in strict mode.
    """
    client = current.installed()
    if client is None:
        if not (os.environ.get("METERLINE_KAFKA_BOOTSTRAP")
                or os.environ.get("METERLINE_ENDPOINT")):
            if safety.is_strict():
                raise NotConfigured(_NOT_CONFIGURED)
            stand_in = current.stand_in()
            stand_in.warn_once()
            return stand_in
        client = init()
    return client


def flush(timeout: float = 30.0) -> int:
    """Flush the process-wide client (see :meth:`MeterlineClient.flush`)."""
    return current_client().flush(timeout)


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


current.register_get_client(get_client)

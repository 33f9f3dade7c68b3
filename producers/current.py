"""The process-wide client slot: which client the tracking APIs record to right now.

Held here, apart from :mod:`meterline.producers.config` (which fills it: ``init``) and the
modules that only read it (:mod:`meterline.producers.safety` counts the SDK's own failures on
it, :mod:`meterline.producers.llm.recorder` records LLM calls to it), so that none of them
imports ``config`` and ``config`` may import them. Nothing installed: the stand-in
(:class:`UnconfiguredClient`), which records nothing and counts every call in
``stats.dropped``.

:func:`get_client` creates the client from the environment on first use; that is
``config.get_client``, which ``config`` registers here when it is imported (the package
``meterline.producers`` imports it first, so it is always registered before any tracking call).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from meterline.producers.sdk import MeterlineClient
from meterline.producers.unconfigured import UnconfiguredClient

_client: MeterlineClient | None = None
_client_lock = threading.Lock()
_unconfigured = UnconfiguredClient()


def set_client(client: MeterlineClient | None) -> MeterlineClient | None:
    """Install ``client`` as the process-wide client; return (without closing) the old one."""
    global _client
    with _client_lock:
        old, _client = _client, client
    return old


def installed() -> MeterlineClient | None:
    """The client :func:`set_client` installed, or None."""
    client = _client
    if client is None:
        with _client_lock:
            client = _client
    return client


def stand_in() -> UnconfiguredClient:
    """The process's stand-in client (one per process: it warns once)."""
    return _unconfigured


def current_client() -> MeterlineClient:
    """The process-wide client if there is one, else the stand-in; never creates or raises."""
    return _client or _unconfigured


_get_client: Callable[[], MeterlineClient] = current_client


def register_get_client(get_client: Callable[[], MeterlineClient]) -> None:
    """Set what :func:`get_client` calls (``meterline.producers.config.get_client``)."""
    global _get_client
    _get_client = get_client


def get_client() -> MeterlineClient:
    """The process-wide client, created from the environment on first use
    (``meterline.producers.config.get_client``); until ``config`` is imported, as
    :func:`current_client`."""
    return _get_client()

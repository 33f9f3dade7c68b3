"""The SDK never breaks the agent: what happens when metering itself fails.

Every tracking API calls :func:`swallow` from its ``except`` block. Outside strict mode the
failure is logged (the first, then every 1000th), counted in ``stats.dropped`` of the
process-wide client (or of the stand-in when nothing is configured) and the API returns what
it documents; the agent's own work and its exceptions are untouched. In strict mode
(``meterline.init(strict=True)`` or ``METERLINE_STRICT=1``) the error is re-raised, for tests
and for teams that want a misconfiguration to fail loudly.
"""

from __future__ import annotations

import logging
import os
import threading

from meterline.producers.current import current_client

log = logging.getLogger("producers")

_strict: bool | None = None  # set by meterline.init(strict=...); None: the environment decides
_lock = threading.Lock()
_failures = 0


def set_strict(strict: bool | None) -> None:
    global _strict
    _strict = strict


def is_strict() -> bool:
    """Whether the tracking APIs raise instead of swallowing their own failures."""
    if _strict is not None:
        return _strict
    return os.environ.get("METERLINE_STRICT", "").strip().lower() in ("1", "true", "yes", "on")


def swallow(what: str, exc: BaseException) -> None:
    """Call from ``except Exception``: re-raises in strict mode, else logs and counts."""
    if is_strict():
        raise exc
    global _failures
    with _lock:
        _failures += 1
        n = _failures
    current_client().stats.bump("dropped", f"{what}: {exc}")
    if n == 1 or n % 1000 == 0:
        log.warning("meterline: %s failed, event not recorded (%d so far): %r", what, n, exc)


def failures() -> int:
    """How many times a tracking API swallowed an error of its own (process-wide)."""
    return _failures

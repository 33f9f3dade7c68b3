"""Liveness and readiness checks for the HTTP endpoints (``/healthz``, ``/readyz``).

A check returns None when fine, else a one-line problem (passwords in URLs are masked).
Liveness: the process's own loop is turning. Readiness: it can do its work now -- the broker
answers; for a processor worker, it is in its consumer group with its table state recovered;
for a sink, ClickHouse answers and the last insert did not fail.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from meterline.ops.lag import OffsetReader
from meterline.ops.logs import mask_secrets

Check = Callable[[], str | None]


@dataclass
class Health:
    live: Sequence[Check] = ()
    ready: Sequence[Check] = ()
    #: readiness results are reused this long (probes and scrapes stay cheap)
    cache_s: float = 1.0
    _cached: tuple[float, list[str]] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def liveness(self) -> list[str]:
        """Problems; empty means alive."""
        return _run(self.live)

    def readiness(self) -> list[str]:
        """Problems (liveness problems included); empty means ready."""
        with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < self.cache_s:
                return self._cached[1]
            problems = _run(self.live) + _run(self.ready)
            self._cached = (time.monotonic(), problems)
            return problems


def _run(checks: Sequence[Check]) -> list[str]:
    problems = []
    for check in checks:
        try:
            problem = check()
        except Exception as exc:  # a check that raises is a failed check, not a 500
            problem = f"{getattr(check, '__name__', 'check')}: {type(exc).__name__}: {exc}"
        if problem:
            problems.append(mask_secrets(problem))
    return problems


def kafka_check(reader: OffsetReader, topics: Sequence[str] = ()) -> Check:
    """The broker answers a metadata request (and has ``topics``) within the reader's timeout."""

    def kafka() -> str | None:
        try:
            found = {tp.topic for tp in reader.partitions(topics)}
        except Exception as exc:
            return f"kafka {reader.bootstrap}: unreachable ({exc})"
        missing = sorted(set(topics) - found)
        return f"kafka {reader.bootstrap}: missing topics {', '.join(missing)}" if missing else None

    return kafka


def group_check(app: Any) -> Check:
    """A Faust worker is in its consumer group, holds its assignment and has recovered the
    table state of it (not ready from start until then, and again during each rebalance)."""

    def consumer_group() -> str | None:
        # Not ``app.tables.recovery``: that property builds Faust's Recovery service on first
        # use, and built from this (HTTP) thread before the worker's own start it hung the
        # worker's start-up. Before the table manager builds it, nothing is recovered.
        recovery = getattr(app.tables, "_recovery", None)
        if recovery is None or not recovery.completed.is_set():
            return "consumer group: joining, or table state of the first assignment recovering"
        if app.rebalancing:
            return "consumer group: rebalancing, table state recovering"
        return None

    return consumer_group


def clickhouse_check(client: Any) -> Check:
    """ClickHouse answers ``ping`` (HTTP ``/ping``; chDB runs in-process)."""

    def clickhouse() -> str | None:
        return None if client.ping() else "clickhouse: not answering ping"

    return clickhouse


def sink_checks(
    sink: Any, thread: threading.Thread | None, stall_s: float = 120.0
) -> tuple[list[Check], list[Check]]:
    """(liveness, readiness) checks of a :class:`meterline.sinks.ClickHouseSink` and its thread."""

    def sink_loop() -> str | None:
        if thread is not None and not thread.is_alive():
            return "sink: thread stopped"
        idle = time.monotonic() - sink.last_loop
        return f"sink: loop stalled for {idle:.0f}s" if idle > stall_s else None

    def sink_insert() -> str | None:
        error = sink.insert_error
        return f"sink: last insert failed, retrying ({error})" if error else None

    def sink_held() -> str | None:
        held = getattr(sink, "held", None)
        return f"sink: {held}" if held else None

    return [sink_loop], [sink_insert, sink_held]

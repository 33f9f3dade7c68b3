"""Stall watch: a worker whose assigned raw partitions have lag while nothing moves.

After a crash and restart, a worker can end up "ready" (in its group, state recovered) and
yet fetch and process nothing: ClickHouse stops growing, offsets stop moving, and no log
line says so (issue 21, item 8). :class:`StallWatch` turns that into a signal. Every
``interval_s`` it reads a *progress* count (records fetched by the consumer plus batches the
processor completed) and, only when that count stood still, the lag of the partitions the
worker owns (high watermark minus the group's committed offset, read from the broker). A
worker is *stalled* when its partitions had lag and its progress count stood still for
``stall_s`` seconds (``METERLINE_WORKER_STALL_S``). Then:

- readiness fails with the partitions and their lag (:meth:`StallWatch.problem`),
- ``meterline_worker_stalled`` is 1 and ``meterline_worker_stalls_total`` counts it,
- a warning logs the consumer's state (:func:`_state`: assignment, paused partitions,
  flow, fetcher, read and committed offsets, and where each task of the loop waits),
- the worker tries to recover by itself (:func:`_remedy`): first it resumes its stream
  partitions and the flow, starts the fetcher if its loop ended, and seeks the partitions to
  their committed offsets; if another ``stall_s`` passes without progress, it rejoins the
  consumer group (a rebalance: table recovery, then the seek to the committed offsets, what
  a restart does without losing the process). At most ``max_remedies`` attempts per stall.
  Records read again are dropped by the dedupe window.

An idle worker (no lag) is never stalled; a worker processing a backlog makes progress.
The watch runs on its own thread: the lag read blocks, and a worker whose event loop no
longer answers is reported too. Contract: :meth:`StallWatch.tick` never raises.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

Lag = Callable[[], Mapping[tuple[str, int], int]]
Remedy = Callable[[int], str]  # attempt (1, 2, ...) -> what it did


@dataclass
class StallWatch:
    """Decides "stalled" from a progress count and the lag of the owned partitions.

    ``progress``: any count that grows while the worker fetches or processes. ``lag``: the
    lag of each partition the worker owns (blocking; called only when progress stood still).
    ``state``: a one-line description of the consumer for the log. ``remedy``: an attempt to
    make it move again, returning what it did."""

    stall_s: float
    progress: Callable[[], int]
    lag: Lag
    state: Callable[[], str] = lambda: ""
    remedy: Remedy | None = None
    max_remedies: int = 3
    clock: Callable[[], float] = time.monotonic
    stalls: int = 0
    remedies: int = 0
    _last_progress: int | None = field(default=None, repr=False)
    _moving_at: float = field(default=0.0, repr=False)
    _stalled: dict[tuple[str, int], int] | None = field(default=None, repr=False)
    _remedied_at: float = field(default=0.0, repr=False)
    _tries: int = field(default=0, repr=False)

    @property
    def stalled(self) -> bool:
        return self._stalled is not None

    def problem(self) -> str | None:
        """The readiness problem while stalled, else None."""
        stalled = self._stalled
        if stalled is None:
            return None
        lagging = ", ".join(f"{t}[{p}]: {n}" for (t, p), n in sorted(stalled.items()))
        idle = self.clock() - self._moving_at
        return (
            f"processor: stalled for {idle:.0f}s: nothing fetched or processed while its "
            f"partitions have lag ({lagging})"
        )

    def tick(self) -> None:
        """One look (never raises: a failed look is logged and counts as no news)."""
        try:
            self._tick()
        except Exception:
            log.exception("stall watch: check failed")

    def _tick(self) -> None:
        now = self.clock()
        progress = self.progress()
        if progress != self._last_progress:
            self._last_progress = progress
            self._moving(now)
            return
        lagging = {tp: n for tp, n in self.lag().items() if n > 0}
        if not lagging:
            self._moving(now)  # idle, not stalled
            return
        if now - self._moving_at < self.stall_s:
            return
        if self._stalled is None:
            self.stalls += 1
            self._stalled = lagging
            log.warning("%s; consumer state: %s", self.problem(), self.state())
        self._stalled = lagging
        if now - self._remedied_at >= self.stall_s and self._tries < self.max_remedies:
            self._tries += 1
            self._remedied_at = now
            self._remedy()

    def _remedy(self) -> None:
        if self.remedy is None:
            return
        self.remedies += 1
        try:
            done = self.remedy(self._tries)
        except Exception as exc:
            log.error("stall watch: recovering the worker failed: %r", exc)
            return
        log.warning("stall watch: %s (attempt %d of %d)", done, self._tries, self.max_remedies)

    def _moving(self, now: float) -> None:
        self._moving_at = now
        self._tries = 0
        self._remedied_at = 0.0
        if self._stalled is not None:
            log.warning("stall watch: the worker is moving again")
            self._stalled = None

    def run(self, stop: threading.Event, interval_s: float) -> threading.Thread:
        """Tick every ``interval_s`` on a daemon thread until ``stop`` is set."""

        def loop() -> None:
            while not stop.wait(interval_s):
                self.tick()

        thread = threading.Thread(target=loop, name="meterline-stall-watch", daemon=True)
        thread.start()
        return thread


# -- the Faust side: state for the log, and the remedy -------------------------------------


def _on_loop(loop: asyncio.AbstractEventLoop | None, coro: Any, timeout_s: float) -> Any:
    if loop is None:
        coro.close()
        raise RuntimeError("the worker's event loop is not running yet")
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        return future.result(timeout_s)
    except TimeoutError as exc:
        future.cancel()
        raise RuntimeError(f"the event loop did not answer within {timeout_s:.0f}s") from exc


def _stream_tps(consumer: Any) -> set[Any]:
    return {tp for tp in consumer.assignment() if not consumer._is_changelog_tp(tp)}


async def _state(app: Any) -> str:
    consumer = app.consumer
    streams = _stream_tps(consumer)
    active = consumer._get_active_partitions()
    recovery = getattr(app.tables, "_recovery", None)
    fetcher = app._fetcher
    drainer = getattr(fetcher, "_drainer", None)
    parts = [
        f"rebalancing={app.rebalancing}",
        f"recovery_completed={recovery is not None and recovery.completed.is_set()}",
        f"in_recovery={getattr(app, 'in_recovery', None)}",
        f"generation={app.consumer_generation_id}",
        f"flow_active={consumer.flow_active}",
        f"flow_control_active={app.flow_control.is_active()}",
        f"fetcher started={fetcher._started.is_set()} stopped={fetcher._stopped.is_set()} "
        f"shutdown={fetcher._shutdown.is_set()} drainer_done={drainer is None or drainer.done()}",
        f"stream partitions={sorted(map(str, streams))}",
        f"not active={sorted(map(str, streams - active))}",
        f"paused={sorted(map(str, consumer._paused_partitions & streams))}",
        f"read offsets={_offsets(consumer._read_offset, streams)}",
        f"committed={_offsets(consumer._committed_offset, streams)}",
        f"unacked={len(consumer._unacked_messages)}",
    ]
    for task in asyncio.all_tasks():  # where each task waits: the agent, fetcher, timers
        parts.append(f"task {_awaiting(task.get_coro())}")
    return "; ".join(parts)


def _awaiting(coro: Any, depth: int = 12) -> str:
    """``outer:line -> ... -> inner:line``: the chain of awaits a suspended coroutine is in
    (``Task.get_stack`` shows only the outermost frame)."""
    chain: list[str] = []
    while coro is not None and len(chain) < depth:
        frame = next((getattr(coro, a) for a in ("cr_frame", "gi_frame", "ag_frame")
                      if getattr(coro, a, None) is not None), None)  # fmt: skip
        if frame is None:
            break
        chain.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
        coro = next((getattr(coro, a) for a in ("cr_await", "gi_yieldfrom", "ag_await")
                     if getattr(coro, a, None) is not None), None)  # fmt: skip
    return " -> ".join(chain) or repr(coro)


def _offsets(offsets: Mapping[Any, Any], tps: set[Any]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]={offsets.get(tp)}" for tp in sorted(tps))


async def _remedy(app: Any, attempt: int) -> str:
    consumer = app.consumer
    recovery = getattr(app.tables, "_recovery", None)
    if attempt > 1:  # resuming did not help: rejoin the group, as a restart would
        consumer._thread._ensure_consumer()._coordinator.request_rejoin()
        return "asked to rejoin the consumer group (a rebalance, table recovery, seek)"
    if app.rebalancing or recovery is None or not recovery.completed.is_set():
        return "not resuming: a rebalance or table recovery is in progress"
    streams = _stream_tps(consumer)
    consumer.resume_partitions(streams)
    app.flow_control.resume()
    consumer.resume_flow()
    fetcher = app._fetcher
    if fetcher._started.is_set() and fetcher._shutdown.is_set():
        fetcher.service_reset()  # its drain loop ended: maybe_start alone would not run it
    await fetcher.maybe_start()
    await consumer.perform_seek()
    return f"resumed {len(streams)} stream partitions and sought them to their committed offsets"


@dataclass
class FaustHooks:
    """What :class:`StallWatch` needs from a running Faust worker, callable from its thread."""

    app: Any
    timeout_s: float = 10.0
    loop: asyncio.AbstractEventLoop | None = None

    def state(self) -> str:
        try:
            return str(_on_loop(self.loop, _state(self.app), self.timeout_s))
        except Exception as exc:
            return f"unavailable ({exc})"

    def remedy(self, attempt: int) -> str:
        return str(_on_loop(self.loop, _remedy(self.app, attempt), self.timeout_s))


def fetched_count(consumer: Any) -> int:
    """Records the consumer fetched so far (:class:`~.fetch_audit.FetchAudit` counts them)."""
    return int(getattr(consumer, "fetched_records", 0))

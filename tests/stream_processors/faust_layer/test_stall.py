"""The stall watch: lag on owned partitions with no progress for ``stall_s`` is a stall."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from meterline.stream_processors.faust_layer.stall import FaustHooks, StallWatch
from meterline.stream_processors.metrics import METRIC_NAMES, StallCollector


@dataclass
class World:
    now: float = 0.0
    progress: int = 0
    lag: dict[tuple[str, int], int] = field(default_factory=dict)
    remedies: list[float] = field(default_factory=list)
    lag_reads: int = 0

    def read_lag(self) -> dict[tuple[str, int], int]:
        self.lag_reads += 1
        return dict(self.lag)

    def remedy(self, attempt: int) -> str:
        self.remedies.append(self.now)
        return "resumed"

    def watch(self, stall_s: float = 10.0) -> StallWatch:
        return StallWatch(
            stall_s=stall_s,
            progress=lambda: self.progress,
            lag=self.read_lag,
            state=lambda: "paused=[raw[0]]",
            remedy=self.remedy,
            clock=lambda: self.now,
        )


def run(world: World, watch: StallWatch, until: float, step: float = 1.0) -> None:
    while world.now < until:
        world.now += step
        watch.tick()


def test_lag_without_progress_for_stall_s_is_a_stall_reported_logged_and_remedied(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = World(lag={("p.actions", 2): 186, ("p.actions", 3): 0})
    watch = world.watch(stall_s=10)
    watch.tick()  # first look: progress "changed" from nothing
    run(world, watch, until=9)
    assert not watch.stalled and watch.problem() is None
    with caplog.at_level(logging.WARNING, "meterline.stream_processors.faust_layer.stall"):
        run(world, watch, until=10)
    assert watch.stalled and watch.stalls == 1
    problem = watch.problem()
    assert problem is not None and "stalled for 10s" in problem
    assert "p.actions[2]: 186" in problem and "p.actions[3]" not in problem
    assert world.remedies == [10]
    assert "paused=[raw[0]]" in caplog.text and "resumed (attempt 1 of 3)" in caplog.text


def test_a_remedy_is_retried_every_stall_s_at_most_max_remedies_times() -> None:
    world = World(lag={("p.actions", 0): 5})
    watch = world.watch(stall_s=10)
    watch.tick()
    run(world, watch, until=100)
    assert world.remedies == [10, 20, 30]
    assert watch.stalls == 1 and watch.remedies == 3 and watch.stalled


def test_progress_ends_a_stall_and_a_new_one_starts_from_scratch() -> None:
    world = World(lag={("p.actions", 0): 5})
    watch = world.watch(stall_s=10)
    watch.tick()
    run(world, watch, until=12)
    assert watch.stalled
    world.progress += 1
    run(world, watch, until=13)
    assert not watch.stalled and watch.problem() is None
    run(world, watch, until=23)
    assert watch.stalled and watch.stalls == 2
    assert world.remedies == [10, 23]


def test_an_idle_worker_without_lag_is_never_stalled() -> None:
    world = World()
    watch = world.watch(stall_s=5)
    run(world, watch, until=60)
    assert not watch.stalled and world.remedies == []
    world.lag = {("p.telemetry", 1): 3}  # lag appears: the clock starts now, not at 0
    run(world, watch, until=64)
    assert not watch.stalled
    run(world, watch, until=65)
    assert watch.stalled


def test_lag_is_read_only_while_progress_stands_still() -> None:
    world = World(lag={("p.actions", 0): 5})
    watch = world.watch()
    for _ in range(5):
        world.progress += 1
        world.now += 1
        watch.tick()
    assert world.lag_reads == 0


def test_a_failing_look_is_logged_and_does_not_raise(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> dict[tuple[str, int], int]:
        raise RuntimeError("broker unreachable")

    watch = StallWatch(stall_s=1, progress=lambda: 0, lag=broken)
    watch.tick()
    watch.tick()
    assert "stall watch: check failed" in caplog.text and not watch.stalled


def test_the_stall_metrics_are_exported_and_named() -> None:
    world = World(lag={("p.actions", 0): 5})
    watch = world.watch(stall_s=2)
    registry = CollectorRegistry()
    registry.register(StallCollector(watch))
    watch.tick()
    run(world, watch, until=3)
    text = generate_latest(registry).decode()
    assert "meterline_worker_stalled 1.0" in text
    assert "meterline_worker_stalls_total 1.0" in text
    assert "meterline_worker_stall_remedies_total 1.0" in text
    for name in ("meterline_worker_stalled", "meterline_worker_stalls"):
        assert name in METRIC_NAMES


def test_hooks_report_a_loop_that_is_not_running() -> None:
    hooks = FaustHooks(app=object())
    assert "not running" in hooks.state()
    with pytest.raises(RuntimeError, match="not running"):
        hooks.remedy(1)


@pytest.mark.filterwarnings("ignore:coroutine '_state' was never awaited")
def test_hooks_report_a_loop_that_does_not_answer() -> None:
    loop = asyncio.new_event_loop()  # never run: nothing it is handed is ever done
    try:
        hooks: Any = FaustHooks(app=object(), timeout_s=0.1, loop=loop)
        assert "did not answer" in hooks.state()
    finally:
        loop.close()


def test_the_state_names_where_each_task_waits() -> None:
    from meterline.stream_processors.faust_layer.stall import _awaiting

    async def inner(gate: asyncio.Event) -> None:
        await gate.wait()

    async def outer(gate: asyncio.Event) -> None:
        await inner(gate)

    async def main() -> str:
        gate = asyncio.Event()
        task = asyncio.ensure_future(outer(gate))
        await asyncio.sleep(0)
        where = _awaiting(task.get_coro())
        gate.set()
        await task
        return where

    where = asyncio.run(main())
    assert where.startswith("outer:") and " -> inner:" in where and " -> wait:" in where

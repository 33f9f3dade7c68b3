"""Wire metrics and health endpoints into each long-running process.

    processor worker  -> processor-<index|pid>.json  step counters, lag of its partitions
    sink (standalone) -> sink.json                    sink counters, lag, ClickHouse health
    meterline up      -> up.json                      the embedded sink's, plus the broker's

``settings.metrics_port`` None turns the endpoints off; 0 picks a free port. Either way the
chosen URL is written to ``<run dir>/<name>.json`` (see :mod:`meterline.ops.endpoints`).
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

from prometheus_client import CollectorRegistry

from meterline.ops.endpoints import EndpointServer
from meterline.ops.health import (
    Health,
    clickhouse_check,
    group_check,
    kafka_check,
    sink_checks,
)
from meterline.ops.lag import OffsetReader
from meterline.settings import Settings
from meterline.sinks import redact_url
from meterline.stream_processors.faust_layer.stall import FaustHooks, StallWatch, fetched_count
from meterline.stream_processors.metrics import LagCollector, StallCollector, StepCounters


def worker_name() -> str:
    """``processor-<index>`` for embedded workers, else ``processor-<pid>``."""
    return f"processor-{os.environ.get('METERLINE_WORKER_INDEX') or os.getpid()}"


def _server(
    settings: Settings, registry: CollectorRegistry, health: Health, name: str
) -> EndpointServer | None:
    if settings.metrics_port is None:
        return None
    info = {  # for `meterline status` (no secrets: the URL is redacted)
        "kafka_bootstrap": settings.kafka_bootstrap or "",
        "clickhouse_url": redact_url(settings.effective_clickhouse_url),
    }
    return EndpointServer(
        registry,
        health,
        name=name,
        host=settings.metrics_host,
        port=settings.metrics_port,
        run_dir=settings.effective_run_dir,
        info=info,
    ).start()


def worker_endpoints(
    app: Any,
    settings: Settings,
    registry: CollectorRegistry,
    processor: Any,
    watch: StallWatch | None = None,
) -> EndpointServer | None:
    """Endpoints of one Faust worker: its step counters and the lag of its partitions;
    ready once it is in its consumer group with its table state recovered, and while
    ``watch`` (see :func:`worker_stall_watch`) does not find it stalled."""
    assert settings.kafka_bootstrap
    reader = OffsetReader(settings.kafka_bootstrap)
    lag = _group_lag(app, settings, reader)
    registry.register(StepCounters(processor))
    registry.register(LagCollector(settings.app_id, lag))
    ready = [kafka_check(reader, settings.topics.raw), group_check(app)]
    if watch is not None:
        registry.register(StallCollector(watch))
        ready.append(watch.problem)
    return _server(settings, registry, Health(ready=ready), worker_name())


def _group_lag(app: Any, settings: Settings, reader: OffsetReader) -> Any:
    topics = settings.topics.raw

    def assigned() -> set[tuple[str, int]]:
        return {(tp.topic, tp.partition) for tp in app.assignor.assigned_actives()}

    return lambda: reader.group_lag(settings.app_id, topics, assigned)


def worker_stall_watch(
    app: Any, settings: Settings, processor: Any
) -> tuple[StallWatch, threading.Thread] | None:
    """A :class:`StallWatch` over ``app``'s raw partitions, ticking on its own thread (None
    when ``settings.worker_stall_s`` is 0). Call before the worker starts: it registers an
    app task that hands the watch the worker's event loop."""
    if not settings.worker_stall_s:
        return None
    assert settings.kafka_bootstrap
    hooks = FaustHooks(app)
    lag = _group_lag(app, settings, OffsetReader(settings.kafka_bootstrap))
    watch = StallWatch(
        stall_s=settings.worker_stall_s,
        progress=lambda: fetched_count(app.consumer) + processor.batches_done,
        lag=lambda: {(t, p): n for t, p, n in lag()},
        state=hooks.state,
        remedy=hooks.remedy,
    )

    @app.task  # type: ignore[untyped-decorator]
    async def _hand_over_loop() -> None:
        hooks.loop = asyncio.get_running_loop()

    interval = min(5.0, max(0.5, settings.worker_stall_s / 4))
    return watch, watch.run(threading.Event(), interval)


def sink_endpoints(
    settings: Settings,
    registry: CollectorRegistry,
    sink: Any,
    thread: threading.Thread | None,
    clickhouse: Any,
    name: str,
) -> EndpointServer | None:
    """Endpoints of a sink process (``meterline sink``) or of ``meterline up``."""
    assert settings.kafka_bootstrap
    reader = OffsetReader(settings.kafka_bootstrap)
    live, ready = sink_checks(sink, thread)
    kafka = kafka_check(reader, settings.topics.sink_inputs)
    health = Health(live=live, ready=[kafka, clickhouse_check(clickhouse), *ready])
    return _server(settings, registry, health, name)

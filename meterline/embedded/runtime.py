"""Assemble the whole pipeline in one place: broker, topics, processor workers, sink.

``Pipeline`` is what ``meterline up`` and ``meterline demo`` run, and what the
integration tests start. Unset ``kafka_bootstrap`` -> a Tansu child process; unset
``clickhouse_url`` -> chDB under ``data_dir``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from dataclasses import replace
from typing import Any

from meterline.billing.services import BillingServices
from meterline.embedded.broker import TansuBroker
from meterline.embedded.workers import WorkerProcess
from meterline.errors import RuntimeFailure
from meterline.ops.admin import ensure_topics, topic_config
from meterline.ops.endpoints import EndpointServer, new_registry, read_endpoints
from meterline.ops.monitoring import sink_endpoints
from meterline.settings import Settings
from meterline.sinks import ClickHouseSink, connect, redact_url
from meterline.sinks.metrics import SinkMetrics
from meterline.sinks.service import build_sink, clickhouse_writer

log = logging.getLogger(__name__)


class Pipeline:
    """Start with :meth:`start` (or ``with``), stop with :meth:`stop`. Not restartable.

    ``ingest_port`` (not None): also serve the ingestion gateway (``meterline.producers.gateway``)
    on
    that port (0: any free port), in this process; its URL is :attr:`gateway_url`.

    ``sink=False``: broker, topics and workers only -- no sink thread, no billing services,
    no ClickHouse opened here; a sink in another process (``meterline sink``) writes the
    topics' output (the fault tests kill such a sink with SIGKILL).

    ``restart=True`` (``meterline up``): :meth:`check` restarts a processor worker that
    exited, or a sink thread that crashed, after a backoff that doubles from
    ``restart_backoff_s[0]`` to ``restart_backoff_s[1]`` seconds (back to the start once the
    component ran ``restart_backoff_s[1]`` seconds), and logs each exit and restart; it
    never raises for them. ``restart=False`` (tests, the demo): it raises instead.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        workers: int = 1,
        clickhouse: Any | None = None,
        sink: bool = True,
        restart: bool = False,
        restart_backoff_s: tuple[float, float] = (1.0, 60.0),
        ingest_port: int | None = None,
    ) -> None:
        self.settings = settings
        self.restart = restart
        self.worker_restarts = 0
        self.sink_restarts = 0
        self._backoff: dict[str, Backoff] = {}
        self._restart_backoff_s = restart_backoff_s
        self.n_workers = workers
        self.with_sink = sink
        self.broker: TansuBroker | None = None
        self.workers: list[WorkerProcess] = []
        self.sink: ClickHouseSink | None = None
        self._clickhouse = clickhouse
        self._stop = threading.Event()
        self._sink_stop = threading.Event()
        self.broker_restarts = 0
        self._sink_thread: threading.Thread | None = None
        self._sink_error: BaseException | None = None
        self.registry = new_registry("up")  # the sink's metrics; workers serve their own
        self.endpoints: EndpointServer | None = None
        self._sink_metrics: SinkMetrics | None = None
        self.billing: BillingServices | None = None
        self.ingest_port = ingest_port
        self.gateway: Any | None = None  # meterline.producers.gateway.GatewayServer

    @property
    def clickhouse(self) -> Any:
        if self._clickhouse is None:
            self._clickhouse = connect(self.settings.effective_clickhouse_url)
        return self._clickhouse

    def start(self) -> Pipeline:
        try:
            self._start_broker()
            assert self.settings.kafka_bootstrap
            self._ensure_topics()
            if self.with_sink:
                self.writer = clickhouse_writer(self.settings.sink_config(), self.clickhouse)
            for i in range(self.n_workers):
                self.add_worker(i)
            if self.with_sink:
                self._start_sink()
                self.billing = BillingServices(self.settings, self.writer).start()
            if self.ingest_port is not None:
                self._start_gateway(self.ingest_port)
        except BaseException:
            self.stop()
            raise
        log.info(
            "pipeline up: kafka=%s clickhouse=%s",
            self.settings.kafka_bootstrap,
            redact_url(self.settings.effective_clickhouse_url) if self.with_sink else "(no sink)",
        )
        return self

    def _start_gateway(self, port: int) -> None:
        from meterline.cli.gateway import gateway_config
        from meterline.producers.gateway import GatewayServer

        self.gateway = GatewayServer(gateway_config(self.settings, port=port)).start()

    @property
    def gateway_url(self) -> str | None:
        return self.gateway.url if self.gateway is not None else None

    def _ensure_topics(self) -> None:
        assert self.settings.kafka_bootstrap
        ensure_topics(
            self.settings.kafka_bootstrap,
            self.settings.topics.all,
            self.settings.partitions,
            replication_factor=self.settings.replication_factor,
            config=self.settings.kafka_client_config(),
            topic_configs=topic_config(self.settings.max_message_bytes),
        )

    def _start_broker(self) -> None:
        if self.settings.kafka_bootstrap:
            return
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.broker = TansuBroker(log_path=self.settings.data_dir / "logs" / "tansu.log").start()
        self.settings = replace(self.settings, kafka_bootstrap=self.broker.bootstrap)

    def add_worker(self, index: int | None = None) -> WorkerProcess:
        idx = len(self.workers) if index is None else index
        worker = WorkerProcess(self.settings, idx, self.settings.data_dir / "logs").start()
        self.workers.append(worker)
        return worker

    def _start_sink(self) -> None:
        if self._sink_metrics is None:  # once per registry: the names cannot register twice
            self._sink_metrics = SinkMetrics(self.registry)
        self.sink = sink = build_sink(self.settings.sink_config(), self.writer, self._sink_metrics)
        self._sink_stop = stop = threading.Event()

        def run() -> None:
            try:
                sink.run(stop)
            except BaseException as exc:  # surfaced by check()
                self._sink_error = exc
                log.exception("sink crashed")

        self._sink_thread = threading.Thread(target=run, name="meterline-sink", daemon=True)
        self._sink_thread.start()
        if self.endpoints is not None:  # a sink restarted after the broker came back
            self.endpoints.stop()
        self.endpoints = sink_endpoints(
            self.settings, self.registry, sink, self._sink_thread, self.clickhouse, "up"
        )

    @property
    def metrics_url(self) -> str | None:
        """``http://host:port`` of this process's /metrics, /healthz, /readyz (None: off)."""
        return self.endpoints.url if self.endpoints is not None else None

    def worker_urls(self) -> dict[str, str]:
        """Endpoint URL of each running worker, by name (``processor-0``, ...)."""
        return {
            e["name"]: e["url"]
            for e in read_endpoints(self.settings.effective_run_dir)
            if str(e["name"]).startswith("processor-")
        }

    def wait_ready(self, timeout_s: float = 120.0) -> float:
        """Block until every worker answers ``/readyz`` with 200: in its consumer group, its
        table state recovered (the first join alone takes seconds on Tansu). Returns the
        seconds waited.

        Raises:
            RuntimeFailure: a component died, or a worker is not ready after ``timeout_s``
                (the message quotes its last readiness problems).
            ValueError: the endpoints are off (``metrics_port`` None): readiness is unknown.
        """
        if self.settings.metrics_port is None:
            raise ValueError("readiness needs the workers' endpoints: metrics_port is off")
        t0 = time.monotonic()
        while True:
            self.check()
            urls = self.worker_urls()
            problems: dict[str, str] = {}
            for w in self.workers:
                name = f"processor-{w.index}"
                url = urls.get(name)
                problem = _not_ready(url) if url else "endpoint not published yet"
                if problem:
                    problems[name] = problem
            if not problems:
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout_s:
                detail = "; ".join(f"{k}: {v}" for k, v in sorted(problems.items()))
                raise RuntimeFailure(f"workers not ready after {timeout_s:.0f}s: {detail}")
            time.sleep(0.2)

    def check(self) -> None:
        """Restart the embedded broker if it died; raise :class:`RuntimeFailure` if another
        component died."""
        if self.broker is not None and not self.broker.alive() and not self._stop.is_set():
            self.recover_broker()
        sink_down = ""
        if self._sink_error is not None:
            sink_down = f"sink crashed: {self._sink_error!r}"
        elif (
            self._sink_thread is not None
            and not self._sink_thread.is_alive()
            and not self._stop.is_set()
        ):
            sink_down = "sink thread stopped"
        if sink_down:
            if not self.restart:
                raise RuntimeFailure(sink_down)
            if self._due("sink", sink_down):
                self._sink_error = None
                self._start_sink()
                self.sink_restarts += 1
                log.warning("sink restarted (restart %d)", self.sink_restarts)
        for i, w in enumerate(self.workers):
            if w.alive():
                continue
            down = (
                f"processor worker {w.index} exited (code {w.returncode}); last log lines:\n"
                f"{w.log_tail()}"
            )
            if not self.restart:
                raise RuntimeFailure(down)
            if self._due(f"processor-{w.index}", down):
                w.stop()  # closes its log file
                self.workers[i] = WorkerProcess(
                    self.settings, w.index, self.settings.data_dir / "logs"
                ).start()
                self.worker_restarts += 1
                log.warning(
                    "processor worker %d restarted (restart %d)", w.index, self.worker_restarts
                )

    def _due(self, name: str, down: str) -> bool:
        """Whether component ``name``, found down, is to be restarted now. The first time
        it is found down, logs why and when it will be restarted."""
        backoff = self._backoff.get(name)
        if backoff is None:
            backoff = self._backoff[name] = Backoff(*self._restart_backoff_s)
        if backoff.due_at is None:
            delay = backoff.schedule()
            log.error("%s\nrestarting it in %.1fs", down, delay)
        return backoff.take()

    def recover_broker(self) -> None:
        """The embedded Tansu exited: start it again on the same port, re-create the topics
        and restart the processor workers and the sink.

        Tansu's memory storage lost every topic, record, consumer-group offset and changelog,
        so the old workers have nothing to commit (they are killed) and the new ones start
        from the beginning of the new, empty topics. Records the broker held and the sink had
        not written yet are lost with it; production Kafka keeps them on disk.
        """
        assert self.broker is not None
        log.warning("embedded broker exited; restarting it on %s", self.broker.bootstrap)
        self.broker_restarts += 1
        # Old clients go before the new broker comes up: an old consumer that rejoins the new
        # broker's group and then leaves stalled the group on Tansu (SyncGroup kept answering
        # "rebalance in progress" to the new sink).
        old, self.workers = self.workers, []
        for w in old:
            w.kill()
        self._sink_stop.set()
        if self._sink_thread is not None:
            self._sink_thread.join(timeout=30)
            if self._sink_thread.is_alive():
                raise RuntimeFailure("sink did not stop after the broker exited")
        self.broker.start()
        self._ensure_topics()
        for w in old:
            self.add_worker(w.index)
        self._sink_error = None
        if self.with_sink:
            self._start_sink()

    def stop(self, drain_timeout_s: float = 30.0) -> None:
        """Stop workers (they commit), then the sink (it finishes its batch), then the broker.

        With the embedded broker, the sink first drains what the workers produced (until no
        batch arrived for 2 s, at most ``drain_timeout_s``): Tansu keeps records in memory,
        so whatever the sink has not written when the broker stops is gone.
        """
        if self.gateway is not None:
            self.gateway.stop()
        if self.billing is not None:
            self.billing.stop()
        for w in self.workers:
            w.stop()
        if self.broker is not None and self.broker.alive() and self.sink is not None:
            self._drain_sink(drain_timeout_s)
        self._stop.set()
        self._sink_stop.set()
        if self._sink_thread is not None:
            self._sink_thread.join(timeout=30)
        if self.endpoints is not None:
            self.endpoints.stop()
        if self.broker is not None:
            self.broker.stop()

    def _drain_sink(self, timeout_s: float, quiet_s: float = 2.0) -> None:
        assert self.sink is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self._sink_thread is not None:
            batches = self.sink.stats.batches
            if self._sink_stop.wait(quiet_s) or self.sink.stats.batches == batches:
                return
        log.warning("sink still busy after %.0fs; stopping it anyway", timeout_s)

    def __enter__(self) -> Pipeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Backoff:
    """When to restart a component that keeps exiting: ``initial`` seconds after the first
    exit, doubling up to ``maximum``; back to ``initial`` after a run of ``maximum``."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial, self.maximum = initial, maximum
        self.delay = initial
        self.due_at: float | None = None
        self.started_at: float | None = None

    def schedule(self) -> float:
        """Schedule the next restart; returns its delay."""
        now = time.monotonic()
        if self.started_at is not None and now - self.started_at >= self.maximum:
            self.delay = self.initial  # it ran long enough: not a restart loop
        delay = self.delay
        self.delay = min(self.delay * 2, self.maximum)
        self.due_at = now + delay
        return delay

    def take(self) -> bool:
        """True once the scheduled restart is due (then it counts as started)."""
        if self.due_at is None or time.monotonic() < self.due_at:
            return False
        self.due_at = None
        self.started_at = time.monotonic()
        return True


def _not_ready(url: str) -> str:
    """Empty when ``url``'s ``/readyz`` answers 200, else its problems (or why it did not
    answer)."""
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=5) as resp:
            return "" if resp.status == 200 else f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        try:
            return "; ".join(json.loads(exc.read()).get("problems", [])) or f"HTTP {exc.code}"
        except ValueError:
            return f"HTTP {exc.code}"
    except OSError as exc:
        return f"not answering ({exc})"

"""The ``meterline`` command line: up, demo, worker, topics, sink, status."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from stream_processors.logs import LOG_LEVELS, configure_logging
from stream_processors.settings import Settings

__all__ = ["LOG_LEVELS", "main", "parser"]


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env().with_overrides(
        kafka_bootstrap=args.kafka_bootstrap,
        clickhouse_url=args.clickhouse_url,
        data_dir=Path(args.data_dir) if args.data_dir else None,
    )


def cmd_up(args: argparse.Namespace) -> int:
    from stream_processors.embedded.runtime import Pipeline

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    pipeline = Pipeline(_settings(args), workers=args.workers).start()
    s = pipeline.settings
    print(
        f"meterline up: kafka {s.kafka_bootstrap}  clickhouse {s.effective_clickhouse_url}  "
        f"database {s.database}",
        flush=True,
    )
    if pipeline.metrics_url:
        print(
            f"metrics {pipeline.metrics_url}/metrics  health /healthz /readyz  "
            f"(workers: {s.effective_run_dir}/processor-*.json)",
            flush=True,
        )
    print(f"Produce to {', '.join(s.topics.raw)}. Ctrl-C to stop.", flush=True)
    try:
        while not stop.wait(1.0):
            pipeline.check()
    except KeyboardInterrupt:
        pass
    finally:
        print("meterline: stopping ...", flush=True)
        pipeline.stop()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from stream_processors.demo.run import run_demo

    return run_demo(_settings(args), events=args.events)


def cmd_worker(args: argparse.Namespace) -> int:
    from stream_processors import worker

    worker.main()
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    """Create meterline's topics (idempotent); fail if one has another partition count."""
    from stream_processors.admin import ensure_topics

    settings = _settings(args)
    if not settings.kafka_bootstrap:
        print(
            "meterline topics: set METERLINE_KAFKA_BOOTSTRAP (or --kafka-bootstrap)",
            file=sys.stderr,
        )
        return 2
    ensure_topics(settings.kafka_bootstrap, settings.topics.all, settings.partitions)
    print(f"meterline topics ready: {', '.join(settings.topics.all)} x {settings.partitions}")
    return 0


def cmd_sink(args: argparse.Namespace) -> int:
    from sinks.metrics import SinkMetrics
    from stream_processors.admin import ensure_topics
    from stream_processors.endpoints import new_registry
    from stream_processors.monitoring import sink_endpoints
    from stream_processors.services import build_sink, clickhouse_writer

    settings = _settings(args)
    if not settings.kafka_bootstrap:
        print(
            "meterline sink: set METERLINE_KAFKA_BOOTSTRAP (or --kafka-bootstrap)", file=sys.stderr
        )
        return 2
    ensure_topics(settings.kafka_bootstrap, settings.topics.all, settings.partitions)
    writer = clickhouse_writer(settings)
    registry = new_registry("sink")
    sink = build_sink(settings, writer, SinkMetrics(registry))
    server = sink_endpoints(settings, registry, sink, None, writer.client, "sink")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        sink.run(stop)
    finally:
        if server is not None:
            server.stop()
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from stream_processors.status import run_status

    return run_status(_settings(args))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="meterline", description="Metering pipeline for AI agents.")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--kafka-bootstrap",
            help="Kafka bootstrap servers "
            "(env METERLINE_KAFKA_BOOTSTRAP; unset = embedded Tansu broker)",
        )
        sp.add_argument(
            "--clickhouse-url",
            help="http(s)://... or chdb:///abs/path "
            "(env METERLINE_CLICKHOUSE_URL; unset = chDB under the data dir)",
        )
        sp.add_argument(
            "--data-dir",
            help="embedded data directory (env METERLINE_DATA_DIR, default ./.meterline)",
        )

    up = sub.add_parser("up", help="run the pipeline (embedded by default) until Ctrl-C")
    common(up)
    up.add_argument("--workers", type=int, default=1, help="processor worker processes")
    up.set_defaults(func=cmd_up)
    demo = sub.add_parser("demo", help="run the pipeline on synthetic agent traffic and report")
    common(demo)
    demo.add_argument("--events", type=int, default=5_000, help="unique events to send")
    demo.set_defaults(func=cmd_demo)
    worker = sub.add_parser("worker", help="run one stream-processor worker (Faust)")
    worker.set_defaults(func=cmd_worker)
    topics = sub.add_parser("topics", help="create meterline's topics (idempotent)")
    common(topics)
    topics.set_defaults(func=cmd_topics)
    sink = sub.add_parser("sink", help="run the ClickHouse sink")
    common(sink)
    sink.set_defaults(func=cmd_sink)
    status = sub.add_parser(
        "status", help="topics, consumer lag, ClickHouse rows, control-plane version"
    )
    common(status)
    status.set_defaults(func=cmd_status)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_logging(Settings.from_env())
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

"""The ``meterline`` command line: up, demo, worker, topics, sink, status, report, sql,
backfill, reprice, reconcile, replay-dead-letters, gateway, keys."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meterline.ops.gc_tuning import tune_gc
from meterline.ops.logs import LOG_LEVELS, configure_logging
from meterline.settings import Settings

__all__ = ["LOG_LEVELS", "main", "parser"]

if TYPE_CHECKING:
    from meterline.dashboard import DashboardServer
    from meterline.embedded.runtime import Pipeline

#: Where ``meterline up`` and ``meterline dashboard`` serve the dashboard by default.
DASHBOARD_PORT = 8321


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env().with_overrides(
        kafka_bootstrap=args.kafka_bootstrap,
        clickhouse_url=args.clickhouse_url,
        data_dir=Path(args.data_dir) if args.data_dir else None,
        control_plane=Path(cp) if (cp := getattr(args, "control_plane", None)) else None,
    )


def cmd_up(args: argparse.Namespace) -> int:
    from meterline.embedded.runtime import Pipeline
    from meterline.sinks import redact_url

    tune_gc()  # this process runs the sink thread
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # restart=True: a worker or sink that dies is restarted with backoff, never the end of `up`
    ingest_port = None if args.no_gateway else args.ingest_port
    pipeline = Pipeline(
        _settings(args), workers=args.workers, restart=True, ingest_port=ingest_port
    ).start()
    s = pipeline.settings
    dashboard = None
    try:
        if not args.no_dashboard:
            try:
                dashboard = _start_dashboard(pipeline, args.dashboard_host, args.dashboard_port)
            except OSError as exc:
                print(
                    f"meterline up: cannot serve the dashboard on {args.dashboard_host}:"
                    f"{args.dashboard_port} ({exc.strerror}): pass --dashboard-port N "
                    "(0: any free port) or --no-dashboard",
                    file=sys.stderr,
                )
                return 2
        print(
            f"meterline up: kafka {s.kafka_bootstrap}  "
            f"clickhouse {redact_url(s.effective_clickhouse_url)}  database {s.database}\n"
            + (f"Dashboard: {dashboard.url}\n" if dashboard else "")
            + (
                f"Gateway: {pipeline.gateway_url} (POST /v1/events, /v1/traces; "
                "keys: meterline keys create --project P --name N)\n"
                if pipeline.gateway_url
                else ""
            )
            + (
                f"metrics {pipeline.metrics_url}/metrics  health /healthz /readyz  "
                f"(workers: {s.effective_run_dir}/processor-*.json)\n"
                if pipeline.metrics_url
                else ""
            )
            + f"Produce to {', '.join(s.topics.raw)}. Ctrl-C to stop.",
            flush=True,
        )
        while not stop.wait(1.0):
            pipeline.check()
    except KeyboardInterrupt:
        pass
    finally:
        print("meterline: stopping ...", flush=True)
        if dashboard is not None:
            dashboard.stop()
        pipeline.stop()
    return 0


def _start_dashboard(pipeline: Pipeline, host: str, port: int) -> DashboardServer:
    """The dashboard in this process: it shares the pipeline's chDB client (chDB allows one
    process per data path); an HTTP ClickHouse gets a client of its own."""
    from meterline.dashboard import DashboardServer, Source
    from meterline.sinks import connect

    s = pipeline.settings
    shared = s.effective_clickhouse_url.startswith("chdb:")
    client = pipeline.clickhouse if shared else connect(s.effective_clickhouse_url)
    return DashboardServer(Source(client, s.database), host=host, port=port).start()


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Serve the dashboard alone, for an HTTP ClickHouse or a chDB path no process holds."""
    from meterline.dashboard import DashboardServer, Source
    from meterline.sinks import connect, redact_url

    settings = _settings(args)
    client = connect(settings.effective_clickhouse_url)
    server = DashboardServer(Source(client, settings.database), host=args.host, port=args.port)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.httpd.shutdown).start())
    print(
        f"meterline dashboard: {server.url}  (clickhouse "
        f"{redact_url(settings.effective_clickhouse_url)}, database {settings.database}). "
        "Ctrl-C to stop.",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from meterline.demo.run import run_demo

    return run_demo(_settings(args), events=args.events)


def cmd_worker(args: argparse.Namespace) -> int:
    from meterline.stream_processors import worker

    worker.main()
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    """Create meterline's topics (idempotent); fail if one has another partition count."""
    from meterline.ops.admin import ensure_topics, topic_config

    settings = _settings(args)
    if not settings.kafka_bootstrap:
        print(
            "meterline topics: set METERLINE_KAFKA_BOOTSTRAP (or --kafka-bootstrap)",
            file=sys.stderr,
        )
        return 2
    ensure_topics(
        settings.kafka_bootstrap,
        settings.topics.all,
        settings.partitions,
        replication_factor=settings.replication_factor,
        config=settings.kafka_client_config(),
        topic_configs=topic_config(settings.max_message_bytes),
    )
    print(f"meterline topics ready: {', '.join(settings.topics.all)} x {settings.partitions}")
    return 0


def cmd_sink(args: argparse.Namespace) -> int:
    from meterline.billing.services import BillingServices
    from meterline.ops.admin import ensure_topics, topic_config
    from meterline.ops.endpoints import new_registry
    from meterline.ops.monitoring import sink_endpoints
    from meterline.ops.services import Stopped, build_sink, clickhouse_writer
    from meterline.sinks.metrics import SinkMetrics

    tune_gc()

    settings = _settings(args)
    if not settings.kafka_bootstrap:
        print(
            "meterline sink: set METERLINE_KAFKA_BOOTSTRAP (or --kafka-bootstrap)", file=sys.stderr
        )
        return 2
    ensure_topics(
        settings.kafka_bootstrap,
        settings.topics.all,
        settings.partitions,
        replication_factor=settings.replication_factor,
        config=settings.kafka_client_config(),
        topic_configs=topic_config(settings.max_message_bytes),
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:  # a ClickHouse that is down at start is waited for, like one that goes down later
        writer = clickhouse_writer(settings, stop=stop, retry_backoff_s=(0.5, 10.0))
    except Stopped:
        return 0
    registry = new_registry("sink")
    sink = build_sink(settings, writer, SinkMetrics(registry))
    server = sink_endpoints(settings, registry, sink, None, writer.client, "sink")
    billing = BillingServices(settings, writer).start()  # seat recompute with a control plane
    try:
        sink.run(stop)
    finally:
        billing.stop()
        if server is not None:
            server.stop()
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from meterline.ops.status import run_status

    return run_status(_settings(args))


def cmd_report(args: argparse.Namespace) -> int:
    from meterline.billing.commands import run_report

    return run_report(_settings(args), project=args.project, start=args.start, end=args.end)


def cmd_sql(args: argparse.Namespace) -> int:
    from meterline.billing.commands import run_sql

    return run_sql(_settings(args), args.query)


def cmd_backfill(args: argparse.Namespace) -> int:
    from meterline.billing.commands import run_backfill

    return run_backfill(
        _settings(args), start=args.start, end=args.end, project=args.project,
        wait_s=args.wait_s,
    )  # fmt: skip


def cmd_reprice(args: argparse.Namespace) -> int:
    from meterline.billing.commands import run_reprice

    return run_reprice(
        _settings(args), start=args.start, end=args.end, project=args.project,
        wait_s=args.wait_s,
    )  # fmt: skip


def cmd_reconcile(args: argparse.Namespace) -> int:
    from meterline.billing.commands import run_reconcile

    return run_reconcile(
        _settings(args), provider=args.provider, path=args.file, project=args.project,
        threshold_pct=args.threshold_pct, min_usd=args.min_usd,
    )  # fmt: skip


def cmd_corrections(args: argparse.Namespace) -> int:
    from meterline.billing.commands import run_corrections

    return run_corrections(_settings(args), wait_s=args.wait_s)


def cmd_replay(args: argparse.Namespace) -> int:
    from meterline.ops.replay import run_replay

    return run_replay(
        _settings(args), project=args.project, error_type=args.reason, dry_run=args.dry_run
    )


def _replay_parser(sub: Any, common: Any) -> None:
    replay = sub.add_parser(
        "replay-dead-letters",
        help="re-produce a project's dead-lettered originals to their raw topics "
        "(dedupe keeps it exact)",
    )
    common(replay)
    replay.add_argument("--project", required=True, help="the project whose records to replay")
    replay.add_argument(
        "--reason", help="only this error type (e.g. quarantined, unsupported_schema_version)"
    )
    replay.add_argument("--dry-run", action="store_true", help="count, do not produce")
    replay.set_defaults(func=cmd_replay)


def cmd_resend_spool(args: argparse.Namespace) -> int:
    """Re-send an SDK spool file (``METERLINE_SPOOL_PATH``); same event ids, so exact."""
    from meterline.producers.spool import resend

    bootstrap = args.kafka_bootstrap or os.environ.get("METERLINE_KAFKA_BOOTSTRAP")
    if not bootstrap:
        print("meterline resend-spool: --kafka-bootstrap or METERLINE_KAFKA_BOOTSTRAP needed")
        return 2
    delivered, failed = resend(args.path, bootstrap, topic_prefix=args.topic_prefix)
    print(f"resent {delivered} record(s); {failed} not delivered (kept in {args.path})")
    return 1 if failed else 0


def _billing_parsers(sub: Any, common: Any) -> None:
    def control(sp: argparse.ArgumentParser) -> None:
        common(sp)
        sp.add_argument("--control-plane", help="control-plane YAML (env METERLINE_CONTROL_PLANE)")

    def day(text: str) -> date:
        return date.fromisoformat(text)

    report = sub.add_parser("report", help="print the billing tables from ClickHouse")
    control(report)
    report.add_argument("--project", help="only this project")
    report.add_argument("--from", dest="start", type=day, help="first day (YYYY-MM-DD)")
    report.add_argument("--to", dest="end", type=day, help="last day (YYYY-MM-DD)")
    report.set_defaults(func=cmd_report)
    sql = sub.add_parser("sql", help="run one SQL query on ClickHouse and print the result")
    common(sql)
    sql.add_argument("query", help='e.g. "SELECT * FROM meterline.seats"')
    sql.set_defaults(func=cmd_sql)
    backfill = sub.add_parser(
        "backfill", help="recompute outcomes and seats for a period from ClickHouse events"
    )
    control(backfill)
    backfill.add_argument("--from", dest="start", type=day, required=True)
    backfill.add_argument("--to", dest="end", type=day, required=True)
    backfill.add_argument("--project", help="only this project")
    wait_help = (
        "seconds to wait for every event given to the pipeline to land in ClickHouse "
        "before refusing (default 60)"
    )
    backfill.add_argument("--wait-s", type=float, default=60.0, help=wait_help)
    backfill.set_defaults(func=cmd_backfill)
    reprice = sub.add_parser(
        "reprice", help="recompute llm_call costs for a period with the current price book"
    )
    control(reprice)
    reprice.add_argument("--from", dest="start", type=day, required=True)
    reprice.add_argument("--to", dest="end", type=day, required=True)
    reprice.add_argument("--project", help="only this project")
    reprice.add_argument("--wait-s", type=float, default=60.0, help=wait_help)
    reprice.set_defaults(func=cmd_reprice)
    reconcile = sub.add_parser(
        "reconcile", help="drift per day and model against a provider's cost export file"
    )
    common(reconcile)
    reconcile.add_argument("--provider", choices=["openai", "anthropic"], required=True)
    reconcile.add_argument("file", type=Path, help="the provider's cost export (JSON)")
    reconcile.add_argument("--project", help="only this project's events")
    reconcile.add_argument("--threshold-pct", type=float, default=1.0,
                           help="exit 3 when a day and model drift more (default 1%%)")
    reconcile.add_argument("--min-usd", type=float, default=0.01,
                           help="ignore drifts of at most this many USD (default 0.01)")
    reconcile.set_defaults(func=cmd_reconcile)
    corrections = sub.add_parser(
        "corrections",
        help="re-evaluate the trajectories late events asked to correct (outcome_corrections)",
    )
    control(corrections)
    corrections.add_argument("--wait-s", type=float, default=60.0, help=wait_help)
    corrections.set_defaults(func=cmd_corrections)


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

    spool = sub.add_parser("resend-spool", help="re-send the records an agent SDK spooled")
    spool.add_argument("path", help="the spool file (the agents' METERLINE_SPOOL_PATH)")
    spool.add_argument("--kafka-bootstrap", help="env METERLINE_KAFKA_BOOTSTRAP")
    spool.add_argument("--topic-prefix", default=os.environ.get("METERLINE_TOPIC_PREFIX",
                                                                "meterline"))
    spool.set_defaults(func=cmd_resend_spool)
    up = sub.add_parser("up", help="run the pipeline (embedded by default) until Ctrl-C")
    common(up)
    up.add_argument("--workers", type=int, default=1, help="processor worker processes")
    up.add_argument("--control-plane", help="control-plane YAML (env METERLINE_CONTROL_PLANE)")
    up.add_argument(
        "--dashboard-port", type=int, default=DASHBOARD_PORT,
        help=f"serve the dashboard on this port (default {DASHBOARD_PORT}; 0: any free port)",
    )  # fmt: skip
    up.add_argument("--dashboard-host", default="127.0.0.1", help="dashboard bind address")
    up.add_argument("--no-dashboard", action="store_true", help="do not serve the dashboard")
    up.add_argument(
        "--ingest-port", type=int, default=8322,
        help="serve the ingestion gateway on this port (default 8322; 0: any free port)",
    )  # fmt: skip
    up.add_argument("--no-gateway", action="store_true", help="do not serve the gateway")
    up.set_defaults(func=cmd_up)
    demo = sub.add_parser("demo", help="run the pipeline on synthetic agent traffic and report")
    common(demo)
    demo.add_argument("--events", type=int, default=5_000, help="unique events to send")
    demo.add_argument(
        "--control-plane",
        help="control-plane YAML (env METERLINE_CONTROL_PLANE; default: docs/examples)",
    )
    demo.set_defaults(func=cmd_demo)
    dash = sub.add_parser(
        "dashboard", help="serve the web dashboard (HTTP ClickHouse, or a chDB path not in use)"
    )
    common(dash)
    dash.add_argument("--port", type=int, default=DASHBOARD_PORT, help="0: any free port")
    dash.add_argument(
        "--host", default="127.0.0.1", help="bind address (no authentication: keep it local)"
    )
    dash.set_defaults(func=cmd_dashboard)
    worker = sub.add_parser("worker", help="run one stream-processor worker (Faust)")
    worker.set_defaults(func=cmd_worker)
    topics = sub.add_parser("topics", help="create meterline's topics (idempotent)")
    common(topics)
    topics.set_defaults(func=cmd_topics)
    sink = sub.add_parser("sink", help="run the ClickHouse sink")
    common(sink)
    sink.add_argument(
        "--control-plane", help="control-plane YAML: also recompute seats (METERLINE_CONTROL_PLANE)"
    )
    sink.set_defaults(func=cmd_sink)
    status = sub.add_parser(
        "status", help="topics, consumer lag, ClickHouse rows, control-plane version"
    )
    common(status)
    status.set_defaults(func=cmd_status)
    _billing_parsers(sub, common)
    _replay_parser(sub, common)
    from meterline.cli import gateway as gateway_cli

    gateway_cli.add_parsers(sub, common, _settings)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_logging(Settings.from_env())
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

"""``meterline up``: the whole pipeline (embedded by default) until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from meterline.cli.common import add_common, settings
from meterline.cli.dashboard import DASHBOARD_PORT
from meterline.ops.gc_tuning import tune_gc

if TYPE_CHECKING:
    from meterline.dashboard import DashboardServer
    from meterline.embedded.runtime import Pipeline


def cmd_up(args: argparse.Namespace) -> int:
    from meterline.embedded.runtime import Pipeline

    tune_gc()  # this process runs the sink thread
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # restart=True: a worker or sink that dies is restarted with backoff, never the end of `up`
    ingest_port = None if args.no_gateway else args.ingest_port
    pipeline = Pipeline(
        settings(args), workers=args.workers, restart=True, ingest_port=ingest_port
    ).start()
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
        print(_banner(pipeline, dashboard), flush=True)
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


def _banner(pipeline: Pipeline, dashboard: DashboardServer | None) -> str:
    from meterline.sinks import redact_url

    s = pipeline.settings
    return (
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
        + f"Produce to {', '.join(s.topics.raw)}. Ctrl-C to stop."
    )


def _start_dashboard(pipeline: Pipeline, host: str, port: int) -> DashboardServer:
    """The dashboard in this process: it shares the pipeline's chDB client (chDB allows one
    process per data path); an HTTP ClickHouse gets a client of its own."""
    from meterline.dashboard import DashboardServer, Source
    from meterline.sinks import connect

    s = pipeline.settings
    shared = s.effective_clickhouse_url.startswith("chdb:")
    client = pipeline.clickhouse if shared else connect(s.effective_clickhouse_url)
    return DashboardServer(Source(client, s.database), host=host, port=port).start()


def add_parser(sub: Any) -> None:
    up = sub.add_parser("up", help="run the pipeline (embedded by default) until Ctrl-C")
    add_common(up)
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

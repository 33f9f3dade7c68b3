"""``meterline dashboard``: serve the web dashboard alone."""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

from meterline.cli.common import add_common, settings

#: Where ``meterline up`` and ``meterline dashboard`` serve the dashboard by default.
DASHBOARD_PORT = 8321


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Serve the dashboard alone, for an HTTP ClickHouse or a chDB path no process holds."""
    from meterline.dashboard import DashboardServer, Source
    from meterline.sinks import connect, redact_url

    s = settings(args)
    client = connect(s.effective_clickhouse_url)
    server = DashboardServer(Source(client, s.database), host=args.host, port=args.port)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.httpd.shutdown).start())
    print(
        f"meterline dashboard: {server.url}  (clickhouse "
        f"{redact_url(s.effective_clickhouse_url)}, database {s.database}). "
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


def add_parser(sub: Any) -> None:
    dash = sub.add_parser(
        "dashboard", help="serve the web dashboard (HTTP ClickHouse, or a chDB path not in use)"
    )
    add_common(dash)
    dash.add_argument("--port", type=int, default=DASHBOARD_PORT, help="0: any free port")
    dash.add_argument(
        "--host", default="127.0.0.1", help="bind address (no authentication: keep it local)"
    )
    dash.set_defaults(func=cmd_dashboard)

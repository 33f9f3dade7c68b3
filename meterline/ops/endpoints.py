"""One small HTTP server per process: ``/metrics`` (Prometheus), ``/healthz``, ``/readyz``.

Runs on a daemon thread (``http.server.ThreadingHTTPServer``); a scrape or probe never
touches the processing loop. The bound address is written to ``<run dir>/<name>.json``
(``{"name", "pid", "url", ...info}``) so ``meterline status`` and tests find ephemeral
ports; :meth:`EndpointServer.stop` removes the file (a killed process leaves it behind:
readers check the pid).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from prometheus_client.process_collector import ProcessCollector

from meterline.ops.health import Health

log = logging.getLogger(__name__)


def new_registry(component: str) -> CollectorRegistry:
    """A registry for one process: process metrics and ``meterline_up{component}``."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    up = Gauge("meterline_up", "1 while the process runs", ["component"], registry=registry)
    up.labels(component=component).set(1)
    return registry


class EndpointServer:
    def __init__(
        self,
        registry: CollectorRegistry,
        health: Health,
        *,
        name: str,
        host: str = "127.0.0.1",
        port: int = 0,
        run_dir: Path | None = None,
        info: dict[str, str] | None = None,
    ) -> None:
        self.registry = registry
        self.health = health
        self.name = name
        self._address = (host, port)
        self.run_dir = run_dir
        self.info = info or {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def endpoint_file(self) -> Path | None:
        return None if self.run_dir is None else self.run_dir / f"{self.name}.json"

    def start(self) -> EndpointServer:
        self._server = ThreadingHTTPServer(self._address, _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"meterline-http-{self.name}", daemon=True
        )
        self._thread.start()
        if self.endpoint_file is not None:
            self.endpoint_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.endpoint_file.with_suffix(".tmp")
            entry = {**self.info, "name": self.name, "pid": os.getpid(), "url": self.url}
            tmp.write_text(json.dumps(entry))
            tmp.replace(self.endpoint_file)
        log.info("metrics and health on %s (/metrics /healthz /readyz)", self.url)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self.endpoint_file is not None:
            with contextlib.suppress(OSError):
                if json.loads(self.endpoint_file.read_text()).get("pid") == os.getpid():
                    self.endpoint_file.unlink()


def _handler(server: EndpointServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(server.registry), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/livez"):
                self._health(server.health.liveness())
            elif path == "/readyz":
                self._health(server.health.readiness())
            else:
                self._send(404, b"not found: try /metrics, /healthz, /readyz\n", "text/plain")

        def _health(self, problems: list[str]) -> None:
            body = {"status": "fail" if problems else "ok", "problems": problems}
            data = (json.dumps(body) + "\n").encode()
            self._send(503 if problems else 200, data, "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # probes are not news
            log.debug("http %s", format % args)

    return Handler


def read_endpoints(run_dir: Path) -> list[dict[str, Any]]:
    """Endpoint files of processes that are still running (stale files are skipped)."""
    found = []
    for path in sorted(run_dir.glob("*.json")) if run_dir.is_dir() else []:
        with contextlib.suppress(OSError, ValueError):
            info = json.loads(path.read_text())
            if _alive(int(info["pid"])):
                found.append(info)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

"""The dashboard's HTTP server: one static page, its assets, one JSON endpoint per panel.

Standard library only (``http.server``), one thread per request; queries go through
:class:`~meterline.dashboard.source.Source` one at a time. No authentication:
it binds to 127.0.0.1 by default; expose it only behind a proxy that authenticates.

    GET /                         the page
    GET /static/<file>            its script, style and the vendored Chart.js
    GET /api/projects             projects with events and their time range
    GET /api/panel/<name>?project=&from=&to=&bucket=   one panel (400 on a bad filter)
"""

from __future__ import annotations

import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from meterline.dashboard import panels
from meterline.dashboard.errors import BadRequest
from meterline.dashboard.filters import parse
from meterline.dashboard.source import Source

log = logging.getLogger(__name__)

STATIC = files("meterline.dashboard") / "static"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class DashboardServer:
    """Serve the dashboard for ``source``. :meth:`start` runs it on a daemon thread."""

    def __init__(self, source: Source, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.source = source
        handler = type("Handler", (_Handler,), {"source": source})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> DashboardServer:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="meterline-dashboard", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve on the calling thread until :meth:`stop` (from another thread) or Ctrl-C."""
        self.httpd.serve_forever()

    def stop(self) -> None:
        """Stop accepting requests and close the socket; in-flight requests finish."""
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=10)
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    source: Source
    server_version = "meterline-dashboard"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        path = url.path
        try:
            if path in ("/", "/index.html"):
                self._static("index.html")
            elif path.startswith("/static/"):
                self._static(path.removeprefix("/static/"))
            elif path == "/api/projects":
                self._json({"database": self.source.database, "projects": self._projects()})
            elif path.startswith("/api/panel/"):
                self._panel(path.removeprefix("/api/panel/"), dict(parse_qsl(url.query)))
            else:
                self._json({"error": "not found"}, HTTPStatus.NOT_FOUND)
        except BadRequest as exc:
            self._json({"error": str(exc)}, HTTPStatus.BAD_REQUEST)
        except Exception as exc:
            log.exception("dashboard request %s failed", path)
            message = f"{type(exc).__name__}: {exc}"[:500]
            self._json({"error": message}, HTTPStatus.INTERNAL_SERVER_ERROR)

    def _projects(self) -> list[dict[str, Any]]:
        return panels.projects(self.source)

    def _panel(self, name: str, query: dict[str, str]) -> None:
        panel = panels.PANELS.get(name)
        if panel is None:
            self._json({"error": f"no panel {name!r}"}, HTTPStatus.NOT_FOUND)
            return
        filters = parse(query)
        body = panel(self.source, filters)
        body["filters"] = {
            "project": filters.project,
            "from": filters.start.isoformat(),
            "to": filters.end.isoformat(),
            "bucket": filters.bucket,
        }
        self._json(body)

    def _static(self, name: str) -> None:
        parts = name.split("/")
        suffix = "." + name.rpartition(".")[2]
        if any(p in ("", ".", "..") for p in parts) or suffix not in CONTENT_TYPES:
            self._json({"error": "not found"}, HTTPStatus.NOT_FOUND)
            return
        resource = STATIC.joinpath(*parts)
        if not resource.is_file():
            self._json({"error": "not found"}, HTTPStatus.NOT_FOUND)
            return
        self._send(resource.read_bytes(), CONTENT_TYPES[suffix])

    def _json(self, body: Any, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(json.dumps(body).encode(), "application/json", status)

    def _send(self, data: bytes, content_type: str, status: HTTPStatus = HTTPStatus.OK) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in SECURITY_HEADERS.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

"""A scripted stand-in for the gateway's ``/v1/events`` (stdlib HTTP server) for unit tests of
the SDK's HTTP transport. The end-to-end tests use the real gateway
(tests/producers/test_http_integration.py)."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

#: (status, headers, body) the server answers; None body: the gateway's PushResult
Reply = tuple[int, dict[str, str], Any]


@dataclass
class FakeGateway:
    """Answers from ``script`` first (one reply per request), then 200 with a PushResult.
    ``refuse(record) -> reason | None`` refuses single records in 200 answers."""

    server: ThreadingHTTPServer
    script: list[Reply] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)  # delivered records
    refuse: Callable[[dict[str, Any]], str | None] = lambda r: None
    delay_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def ids(self) -> list[str]:
        with self.lock:
            return [r["event_id"] for r in self.received]


def _handler(gw: FakeGateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            body = gzip.decompress(raw) if self.headers.get("Content-Encoding") == "gzip" else raw
            records = [json.loads(line) for line in body.splitlines() if line.strip()]
            with gw.lock:
                gw.requests.append({"path": self.path, "headers": dict(self.headers),
                                    "records": records, "gzip_bytes": len(raw)})  # fmt: skip
                reply = gw.script.pop(0) if gw.script else None
            if gw.delay_s:
                time.sleep(gw.delay_s)
            if reply is not None and reply[0] != 200:
                status, headers, payload = reply
                self._answer(status, headers, payload if payload is not None else {"error": "x"})
                return
            errors, pushed = [], 0
            with gw.lock:
                for i, rec in enumerate(records):
                    reason = gw.refuse(rec)
                    if reason:
                        errors.append(f"#{i}: {reason}")
                    else:
                        pushed += 1
                        gw.received.append(rec)
            self._answer(200, {}, {"pushed": pushed, "skipped": len(errors), "errors": errors})

        def _answer(self, status: int, headers: dict[str, str], payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def start_fake_gateway(port: int = 0) -> FakeGateway:
    server = ThreadingHTTPServer(("127.0.0.1", port), BaseHTTPRequestHandler)
    server.daemon_threads = True
    gw = FakeGateway(server)
    server.RequestHandlerClass = _handler(gw)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()  # fmt: skip
    return gw


@pytest.fixture
def fake_gateway() -> Iterator[FakeGateway]:
    gw = start_fake_gateway()
    yield gw
    gw.server.shutdown()
    gw.server.server_close()

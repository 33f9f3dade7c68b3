"""A local query endpoint so other processes can read the chDB that ``meterline up`` holds.

chDB lets one process open a data path. ``meterline up`` (embedded chDB) therefore serves
queries over HTTP on 127.0.0.1, on a random port, and writes ``<data dir>/query-endpoint.json``
(mode 0600: url, bearer token, pid). ``meterline report``/``sql``/``backfill`` find the file
and talk to it through :class:`RemoteClient` (the ``query`` subset of a clickhouse-connect
client). Only reading statements are served (first keyword SELECT, WITH, SHOW, DESCRIBE,
EXPLAIN or EXISTS; one statement; no INTO OUTFILE) -- a guard against accidents, not a
security boundary: that is the token in a file only the owner can read. (chDB's
``readonly`` setting would stick to the shared session and stop the sink's inserts.)
``/backfill`` runs a backfill inside ``up``.
Blocking, one thread per request; the chDB client serialises queries itself.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import secrets
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from meterline.billing.errors import ClickHouseUnavailable, QueryFailed

FILE_NAME = "query-endpoint.json"
Handler = Any  # callable(dict) -> dict, one per route


@dataclass
class Result:
    """What report/sql read of a clickhouse-connect QueryResult."""

    column_names: tuple[str, ...]
    result_rows: list[tuple[Any, ...]]

    def named_results(self) -> list[dict[str, Any]]:
        return [dict(zip(self.column_names, row, strict=True)) for row in self.result_rows]


class QueryServer:
    """Serve ``/query`` (and extra routes) for ``client`` until :meth:`stop`."""

    def __init__(self, client: Any, data_dir: Path, routes: dict[str, Handler] | None = None):
        self.client, self.path = client, data_dir / FILE_NAME
        self.token = secrets.token_hex(16)
        self.routes: dict[str, Handler] = {"/query": self._query, **(routes or {})}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> QueryServer:
        self._thread.start()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"url": self.url, "token": self.token, "pid": os.getpid()}, f)
        return self

    def stop(self) -> None:
        self.path.unlink(missing_ok=True)
        self._server.shutdown()
        self._server.server_close()

    def _query(self, body: dict[str, Any]) -> dict[str, Any]:
        sql = reading(str(body["sql"]))
        result = self.client.query(sql, parameters=body.get("parameters") or None)
        return {"columns": list(result.column_names), "rows": result.result_rows}


_READING = re.compile(r"^\s*\(*\s*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXPLAIN|EXISTS)\b", re.I)


def reading(sql: str) -> str:
    """``sql`` if it is one reading statement; else :class:`QueryFailed`."""
    text = sql.strip().rstrip(";")
    if not _READING.match(text) or ";" in text or re.search(r"\bINTO\s+OUTFILE\b", text, re.I):
        raise QueryFailed(
            "the query endpoint of `meterline up` runs one reading statement (SELECT, WITH, "
            "SHOW, DESCRIBE, EXPLAIN, EXISTS); stop `meterline up` to run others"
        )
    return text


def _handler(server: QueryServer) -> type[BaseHTTPRequestHandler]:
    class QueryHandler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            auth = self.headers.get("Authorization", "")
            if not hmac.compare_digest(auth, f"Bearer {server.token}"):
                return self._send(401, {"error": "bad token"})
            route = server.routes.get(self.path)
            if route is None:
                return self._send(404, {"error": f"no route {self.path}"})
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                self._send(200, route(body))
            except Exception as exc:  # the caller gets ClickHouse's message
                self._send(400, {"error": str(exc)})

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = orjson.dumps(payload, default=str)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return QueryHandler


class RemoteClient:
    """Queries through a running ``meterline up``'s endpoint (see module docstring)."""

    def __init__(self, url: str, token: str, timeout_s: float = 600.0) -> None:
        self.url, self.token, self.timeout_s = url, token, timeout_s

    def call(self, route: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            self.url + route,
            data=orjson.dumps(body, default=_jsonable),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return dict(json.loads(response.read()))
        except urllib.error.HTTPError as exc:
            raise QueryFailed(json.loads(exc.read() or b"{}").get("error", str(exc))) from None
        except OSError as exc:
            raise ClickHouseUnavailable(f"query endpoint {self.url}: {exc}") from exc

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> Result:
        answer = self.call("/query", {"sql": sql, "parameters": parameters or {}})
        return Result(tuple(answer["columns"]), [tuple(r) for r in answer["rows"]])


def _jsonable(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"cannot send {type(value).__name__} as a query parameter")


def find(data_dir: Path) -> RemoteClient | None:
    """The endpoint of a live ``meterline up`` on ``data_dir``; None if there is none."""
    try:
        info = json.loads((data_dir / FILE_NAME).read_text())
        os.kill(int(info["pid"]), 0)  # a file left by a killed process is ignored
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return RemoteClient(str(info["url"]), str(info["token"]))

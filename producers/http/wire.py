"""One POST to the gateway and what its answer says (standard library ``http.client``)."""

from __future__ import annotations

import gzip
import http.client
import json
import re
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from meterline.schemas import RawRecord, encode

_INDEX = re.compile(r"#(\d+): (.*)", re.S)
#: errors of a keep-alive connection the server closed while idle: resent once at once
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


@dataclass
class Answer:
    """What one POST came to: ``status`` (None: no answer, ``error`` says why)."""

    status: int | None
    body: bytes = b""
    retry_after: float | None = None
    error: str = ""


class Connection:
    """A keep-alive connection to one host, reopened after errors. One thread uses it."""

    def __init__(
        self, https: bool, host: str, port: int | None, timeout_s: float, ssl_context: Any = None
    ) -> None:
        self.https, self.host, self.port = https, host, port
        self.timeout_s = timeout_s
        self.ssl_context = ssl_context
        self._conn: http.client.HTTPConnection | None = None

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        for fresh in (False, True):
            reused = self._conn is not None
            conn = self._open()
            try:
                conn.request("POST", path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if reused and not fresh and isinstance(exc, _STALE):
                    continue  # the server closed an idle keep-alive connection: once more
                return Answer(None, error=f"{type(exc).__name__}: {exc}")
            if resp.will_close:
                self.close()
            return Answer(resp.status, data, retry_after(resp.getheader("Retry-After")))
        raise AssertionError("unreachable")  # pragma: no cover

    def _open(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self.https:
                import ssl

                ctx = self.ssl_context or ssl.create_default_context()
                self._conn = http.client.HTTPSConnection(self.host, self.port,
                                                         timeout=self.timeout_s, context=ctx)
            else:
                self._conn = http.client.HTTPConnection(self.host, self.port,
                                                        timeout=self.timeout_s)
        return self._conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def forget(self) -> None:
        """In a forked child: drop the parent's connection without touching it."""
        self._conn = None


def record_line(record: RawRecord) -> bytes:
    """The record's wire JSON; without ``project`` when it is the default (the key's then)."""
    if record.project == "default":
        return record.model_dump_json(exclude={"project"}).encode()
    return encode(record)


def gzip_lines(lines: list[bytes], level: int) -> bytes:
    """Gzip NDJSON of ``lines``."""
    return gzip.compress(b"\n".join(lines) + b"\n", compresslevel=level, mtime=0)


def refused_records(answer_body: bytes) -> dict[int, str]:
    """The records a 200's ``PushResult`` refused: ``{index: reason}`` from ``#i: reason``."""
    try:
        errors = json.loads(answer_body).get("errors") or []
    except (ValueError, AttributeError):
        return {}
    out: dict[int, str] = {}
    for error in errors:
        m = _INDEX.match(str(error))
        if m is not None:
            out[int(m.group(1))] = m.group(2)
    return out


def retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), None when absent/invalid."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return None


def error_message(answer_body: bytes) -> str:
    """The gateway's ``{"error": ...}`` message, else the body's start."""
    try:
        parsed = json.loads(answer_body)
        if isinstance(parsed, dict) and "error" in parsed:
            return str(parsed["error"])
    except ValueError:
        pass
    return answer_body[:200].decode("utf-8", "replace").strip()

"""The SDK's HTTP transport: records batched and gzip-posted to the gateway's ``/v1/events``.

For agents without Kafka access (``meterline.init(endpoint=..., api_key=...)``, or
``METERLINE_ENDPOINT`` / ``METERLINE_API_KEY``). Standard library only (``http.client``), so
the minimal install stays confluent-kafka + pydantic. :class:`HttpSink` is a
:class:`~meterline.producers.sink.Sink`, like the Kafka one:

- ``send`` encodes the record (one NDJSON line) into an in-memory buffer and returns; one
  daemon thread, ``meterline-http``, posts batches (``max_records`` / ``max_bytes`` per request,
  or whatever waited ``linger_s``), one request at a time on a keep-alive connection.
  ``send`` blocks only when ``max_buffered`` records wait, for at most ``block_timeout_s``,
  then raises :class:`~meterline.producers.errors.QueueFull` (the client counts it in
  ``send_errors``). It runs on the client's sender thread, never on the agent's.
- The API key decides the project: a record with the default project ``"default"`` is sent
  without one and the gateway stamps its key's; a record naming another project than the
  key's is refused by the gateway (reported failed with its reason).
- Delivery report per record, from the sender's thread: ``(record, None)`` once the gateway
  answered 200 (it answers 200 only after the broker acknowledged); a record the gateway
  refused (``errors`` of its answer) gets a ``KafkaError`` ``INVALID_RECORD`` with the reason
  (the client does not spool it: it would be refused again). 429, 503, 408, 500, 502, 504 and
  connection errors are retried, waiting ``Retry-After`` when the answer has one, else
  exponential backoff with jitter (``backoff_s`` doubling up to ``max_backoff_s``), until the
  batch's oldest record has waited ``delivery_timeout_s`` (librdkafka's
  ``message.timeout.ms``); then each record gets ``_MSG_TIMED_OUT``. 401/403 and other
  answers fail the batch at once (``_AUTHENTICATION`` / ``_FAIL``); 413 splits it in two.
- ``purge`` (the client's give-up at exit) reports everything buffered or in flight with
  ``_PURGE_QUEUE`` at once; a request still in flight may yet be delivered, so a spooled
  record can arrive twice (the pipeline's dedupe counts it once).
"""

from __future__ import annotations

import atexit
import gzip
import http.client
import json
import logging
import random
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from confluent_kafka import KafkaError

from meterline.producers.client import DeliveryStats
from meterline.producers.errors import ProducerError, QueueFull
from meterline.producers.redact import DEFAULT_REDACTOR, Redactor
from meterline.producers.sink import DeliveryCallback
from meterline.schemas import RawRecord, encode

log = logging.getLogger("producers")

__all__ = ["EVENTS_PATH", "HttpConfig", "HttpSink", "HttpStats"]

#: the gateway's events endpoint, appended to the endpoint's path
EVENTS_PATH = "/v1/events"
#: answers worth retrying (the gateway's 429 and 503; proxies' 408, 500, 502, 504)
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
#: Retry-After values beyond this (seconds) are taken as this
MAX_RETRY_AFTER_S = 300.0
_INDEX = re.compile(r"#(\d+): (.*)", re.S)
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


@dataclass(frozen=True)
class HttpConfig:
    """How :class:`HttpSink` batches, posts and retries. The gateway takes at most 1,000
    records and 5 MiB (decompressed) per request."""

    max_records: int = 500
    max_bytes: int = 4_000_000  # uncompressed NDJSON per request
    linger_s: float = 0.05
    gzip_level: int = 5
    request_timeout_s: float = 30.0  # one request (the gateway waits up to ~12 s for acks)
    delivery_timeout_s: float = 300.0  # a record's whole life in the sink, retries included
    max_buffered: int = 100_000
    block_timeout_s: float = 5.0
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_records <= 1_000:
            raise ValueError("HttpConfig.max_records must be within 1..1000 (the gateway's limit)")
        for name in ("max_bytes", "max_buffered"):
            if getattr(self, name) < 1:
                raise ValueError(f"HttpConfig.{name} must be >= 1")


@dataclass
class HttpStats(DeliveryStats):
    """:class:`DeliveryStats` (``enqueued``, ``delivered``, ``failed``, ``last_error``) and the
    requests: ``requests`` made, ``retries`` (``retried_by`` reason: ``"429"``,
    ``"503"``, ``"connection"``, ...), ``refused`` (records the gateway refused)."""

    requests: int = 0
    retries: int = 0
    refused: int = 0
    retried_by: dict[str, int] = field(default_factory=dict)
    last_status: int | None = None


@dataclass
class _Item:
    record: RawRecord
    line: bytes
    callback: DeliveryCallback | None
    deadline: float


@dataclass
class _Batch:
    items: list[_Item]
    settled: bool = False  # reported (delivered, failed or purged): never report twice


@dataclass
class _Answer:
    """What one POST came to: ``status`` (None: no answer), ``body``, ``retry_after``."""

    status: int | None
    body: bytes = b""
    retry_after: float | None = None
    error: str = ""


class HttpSink:
    """Posts records to a meterline gateway. See the module docstring for the contract.

    ``endpoint``: the gateway's base URL (``https://gw.example.com``, a path prefix allowed;
    a URL already ending in ``/v1/events`` is used as it is). ``api_key``: sent as
    ``Authorization: Bearer``, never logged. ``redactor``: as for
    :class:`~meterline.producers.client.MeterlineProducer` (the SDK client redacts itself and
    passes None).
    """

    def __init__(
        self,
        endpoint: str,
        api_key: str | None,
        *,
        config: HttpConfig | None = None,
        on_delivery: DeliveryCallback | None = None,
        redactor: Redactor | None = DEFAULT_REDACTOR,
        ssl_context: Any = None,
    ) -> None:
        url = urlsplit(endpoint)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"endpoint must be an http(s) URL, not {endpoint!r}")
        path = url.path.rstrip("/")
        self.endpoint = endpoint
        self.path = path if path.endswith(EVENTS_PATH) else path + EVENTS_PATH
        self.config = config or HttpConfig()
        self.redactor = redactor
        self._https = url.scheme == "https"
        self._host = url.hostname
        self._port = url.port
        self._ssl_context = ssl_context
        self._headers = {
            "Content-Type": "application/x-ndjson",
            "Content-Encoding": "gzip",
            "User-Agent": "meterline-python",
        }
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._on_delivery = on_delivery
        self._closed = False
        self._reset()
        atexit.register(self._close_at_exit)

    def _reset(self) -> None:
        """Fresh state and poster thread (at start, and in a forked child)."""
        self.stats = HttpStats()
        self._cond = threading.Condition()
        self._buffer: deque[_Item] = deque()
        self._bytes = 0
        self._inflight: _Batch | None = None
        self._flushing = 0
        self._interrupt = threading.Event()
        self._stopping = False
        self._conn: http.client.HTTPConnection | None = None
        self._thread = threading.Thread(target=self._run, name="meterline-http", daemon=True)
        self._thread.start()

    # -- Sink ----------------------------------------------------------------------------------

    def send(self, record: RawRecord, on_delivery: DeliveryCallback | None = None) -> None:
        """Buffer one record for the next request (see the module docstring)."""
        if self.redactor is not None:
            record = self.redactor.record(record)
        line = _line(record)
        c = self.config
        with self._cond:
            if self._closed:
                raise ProducerError("the HTTP sink is closed; record not sent")
            if len(self._buffer) >= c.max_buffered:
                deadline = time.monotonic() + c.block_timeout_s
                while len(self._buffer) >= c.max_buffered:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise QueueFull(f"HTTP sink buffer full ({c.max_buffered} records) for "
                                        f"{c.block_timeout_s}s; record not sent")  # fmt: skip
                    self._cond.wait(left)
            now = time.monotonic()
            self._buffer.append(_Item(record, line, on_delivery, now + c.delivery_timeout_s))
            self._bytes += len(line) + 1
            self.stats.enqueued += 1
            if len(self._buffer) >= c.max_records or self._bytes >= c.max_bytes \
                    or len(self._buffer) == 1:
                self._cond.notify_all()

    def poll(self, timeout: float = 0.0) -> int:
        """Delivery reports are served from the posting thread as answers arrive: nothing to
        serve here (the Sink protocol's method)."""
        return 0

    def flush(self, timeout: float = 30.0) -> int:
        """Post what is buffered now and wait up to ``timeout`` seconds until every record
        is reported; return how many are not yet (0: done)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._pending() and self._thread.is_alive():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                return self._pending()
            finally:
                self._flushing -= 1

    def _pending(self) -> int:
        inflight = self._inflight
        return len(self._buffer) + (len(inflight.items) if inflight is not None else 0)

    def purge(self) -> None:
        """Give up on everything buffered or in flight: each record's report fires now with
        ``_PURGE_QUEUE`` (so its callback can spool or count it)."""
        with self._cond:
            items = list(self._buffer)
            self._buffer.clear()
            self._bytes = 0
            batch, self._inflight = self._inflight, None
            if batch is not None and not batch.settled:
                batch.settled = True
                items = batch.items + items
            self._interrupt.set()
            self._cond.notify_all()
        if items:
            self._report(items, KafkaError(KafkaError._PURGE_QUEUE, "purged: not delivered "
                                           "to the gateway before the client gave up"))

    def close(self, timeout: float = 30.0) -> int:
        """Flush up to ``timeout``; purge what is left (reported failed); stop the thread.
        Returns how many records were not delivered."""
        if self._closed:
            return 0
        remaining = self.flush(timeout)
        if remaining:
            log.error("meterline: %d record(s) not delivered to the gateway at close", remaining)
            self.purge()
        with self._cond:
            self._closed = self._stopping = True
            self._interrupt.set()
            self._cond.notify_all()
        self._thread.join(timeout=1.0)
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        atexit.unregister(self._close_at_exit)
        return remaining

    def after_fork(self) -> None:
        """In a forked child: the parent's buffer and connection stay the parent's; a new
        posting thread serves the child."""
        self._reset()

    def _close_at_exit(self) -> None:
        if not self._closed:
            self.close(timeout=10.0)

    def __enter__(self) -> HttpSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- posting thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                batch = self._next_batch()
                if batch is None:
                    return
                self._deliver(batch)
            except Exception:  # never let the thread die: report the batch, keep serving
                log.exception("meterline: the HTTP sink failed posting a batch")
                self._fail_inflight()

    def _next_batch(self) -> _Batch | None:
        """Wait for a batch to post (full, lingered, or flushed); None once stopping."""
        c = self.config
        with self._cond:
            while True:
                if self._stopping:
                    return None
                buf = self._buffer
                if buf:
                    age = time.monotonic() - (buf[0].deadline - c.delivery_timeout_s)
                    full = len(buf) >= c.max_records or self._bytes >= c.max_bytes
                    if full or self._flushing or age >= c.linger_s:
                        items: list[_Item] = []
                        size = 0
                        while buf and len(items) < c.max_records and (
                                not items or size + len(buf[0].line) + 1 <= c.max_bytes):
                            item = buf.popleft()
                            size += len(item.line) + 1
                            items.append(item)
                        self._bytes -= size
                        self._interrupt.clear()
                        self._inflight = batch = _Batch(items)
                        self._cond.notify_all()  # room for a blocked send
                        return batch
                    self._cond.wait(c.linger_s - age)
                else:
                    self._cond.wait()

    def _deliver(self, batch: _Batch) -> None:
        attempt = 0
        while not batch.settled:
            answer = self._post(batch.items)
            self.stats.requests += 1
            self.stats.last_status = answer.status
            status = answer.status
            if status is not None and 200 <= status < 300:
                self._settle_answer(batch, answer.body)
            elif status == 413 and len(batch.items) > 1:
                self._split(batch)
            elif status is None or status in RETRY_STATUSES:
                reason = "connection" if status is None else str(status)
                why = answer.error or _message(answer.body) or f"HTTP {status}"
                if not self._back_off(batch, attempt, answer.retry_after, reason, why):
                    self._settle(batch, KafkaError(
                        KafkaError._MSG_TIMED_OUT, f"not delivered to the gateway within "
                        f"{self.config.delivery_timeout_s}s (last: {why})"))  # fmt: skip
                attempt += 1
            else:
                code = KafkaError._AUTHENTICATION if status in (401, 403) else KafkaError._FAIL
                why = _message(answer.body) or answer.error
                self._settle(batch, KafkaError(code, f"gateway answered {status}: {why}"))
        with self._cond:
            if self._inflight is batch:
                self._inflight = None
            self._cond.notify_all()

    def _back_off(
        self, batch: _Batch, attempt: int, retry_after: float | None, reason: str, why: str
    ) -> bool:
        """Wait before the next attempt; False when that would pass the batch's deadline."""
        c = self.config
        if retry_after is not None:
            wait = min(retry_after, MAX_RETRY_AFTER_S)
        else:
            wait = min(c.backoff_s * 2**attempt, c.max_backoff_s) * random.uniform(0.5, 1.0)
        if time.monotonic() + wait > min(item.deadline for item in batch.items):
            return False
        with self.stats._lock:
            self.stats.retries += 1
            self.stats.retried_by[reason] = self.stats.retried_by.get(reason, 0) + 1
        if attempt == 0 or attempt % 10 == 0:
            log.warning("meterline: gateway request of %d record(s) failed (%s); retrying "
                        "in %.1fs", len(batch.items), why, wait)  # fmt: skip
        self._interrupt.wait(wait)  # purge/close cut the wait short
        return True

    def _split(self, batch: _Batch) -> None:
        """413: post the first half now, put the second half back in front of the buffer."""
        half = len(batch.items) // 2
        with self._cond:
            if batch.settled:
                return
            back = batch.items[half:]
            batch.items = batch.items[:half]
            self._buffer.extendleft(reversed(back))
            self._bytes += sum(len(i.line) + 1 for i in back)

    def _post(self, items: list[_Item]) -> _Answer:
        body = gzip.compress(b"\n".join(i.line for i in items) + b"\n",
                             compresslevel=self.config.gzip_level, mtime=0)  # fmt: skip
        for fresh in (False, True):
            reused = self._conn is not None
            conn = self._connection()
            try:
                conn.request("POST", self.path, body=body, headers=self._headers)
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                self._conn = None
                if reused and not fresh and isinstance(exc, _STALE):
                    continue  # the server closed an idle keep-alive connection: once more
                return _Answer(None, error=f"{type(exc).__name__}: {exc}")
            if resp.will_close:
                conn.close()
                self._conn = None
            return _Answer(resp.status, data, _retry_after(resp.getheader("Retry-After")))
        raise AssertionError("unreachable")  # pragma: no cover

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            timeout = self.config.request_timeout_s
            if self._https:
                import ssl

                ctx = self._ssl_context or ssl.create_default_context()
                self._conn = http.client.HTTPSConnection(self._host, self._port,
                                                         timeout=timeout, context=ctx)
            else:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        return self._conn

    # -- reports -------------------------------------------------------------------------------

    def _settle_answer(self, batch: _Batch, body: bytes) -> None:
        """200: the records the answer's ``errors`` name (``#i: reason``) were refused, the
        rest delivered."""
        refused: dict[int, str] = {}
        try:
            errors = json.loads(body).get("errors") or []
        except (ValueError, AttributeError):
            errors = []
        for error in errors:
            m = _INDEX.match(str(error))
            if m is not None:
                refused[int(m.group(1))] = m.group(2)
        if not self._claim(batch):
            return
        ok = [item for i, item in enumerate(batch.items) if i not in refused]
        self._report(ok, None)
        for i, reason in refused.items():
            if i < len(batch.items):
                self.stats.refused += 1
                self._report([batch.items[i]], KafkaError(
                    KafkaError.INVALID_RECORD, f"refused by the gateway: {reason}"))  # fmt: skip

    def _settle(self, batch: _Batch, err: KafkaError) -> None:
        if self._claim(batch):
            self._report(batch.items, err)

    def _claim(self, batch: _Batch) -> bool:
        with self._cond:
            if batch.settled:
                return False
            batch.settled = True
            return True

    def _fail_inflight(self) -> None:
        with self._cond:
            batch, self._inflight = self._inflight, None
            self._cond.notify_all()
        if batch is not None:
            self._settle(batch, KafkaError(KafkaError._FAIL, "HTTP sink error"))

    def _report(self, items: list[_Item], err: KafkaError | None) -> None:
        if not items:
            return
        if err is None:
            self.stats._delivered(len(items))
        else:
            self.stats._failed(err, len(items))
            if err.code() != KafkaError._PURGE_QUEUE:
                log.warning("meterline: %d record(s) not delivered: %s", len(items), err.str())
        for item in items:
            for callback in (self._on_delivery, item.callback):
                if callback is None:
                    continue
                try:
                    callback(item.record, err)
                except Exception:
                    log.exception("meterline: delivery callback failed")


def _line(record: RawRecord) -> bytes:
    """The record's wire JSON; without ``project`` when it is the default (the key's then)."""
    if record.project == "default":
        return record.model_dump_json(exclude={"project"}).encode()
    return encode(record)


def _retry_after(value: str | None) -> float | None:
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


def _message(body: bytes) -> str:
    """The gateway's ``{"error": ...}`` message, else the body's start."""
    try:
        parsed = json.loads(body)
        if isinstance(parsed, dict) and "error" in parsed:
            return str(parsed["error"])
    except ValueError:
        pass
    return body[:200].decode("utf-8", "replace").strip()

""":class:`HttpSink`: the SDK's Sink over HTTP (the contract: :mod:`meterline.producers.http`)."""

from __future__ import annotations

import atexit
import logging
import random
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from confluent_kafka import KafkaError

from meterline.producers.http.buffer import Batch, Buffer, Item
from meterline.producers.http.config import (
    EVENTS_PATH,
    MAX_RETRY_AFTER_S,
    RETRY_STATUSES,
    HttpConfig,
    HttpStats,
)
from meterline.producers.http.wire import (
    Connection,
    error_message,
    gzip_lines,
    record_line,
    refused_records,
)
from meterline.producers.redact import DEFAULT_REDACTOR, Redactor
from meterline.producers.sink import DeliveryCallback
from meterline.schemas import RawRecord

log = logging.getLogger("producers")

_PURGED = "purged: not delivered to the gateway before the client gave up"


class HttpSink:
    """Posts records to a meterline gateway.

    ``endpoint``: the gateway's base URL (``https://gw.example.com``, a path prefix allowed;
    a URL already ending in ``/v1/events`` is used as it is). ``api_key``: sent as
    ``Authorization: Bearer``, never logged. ``redactor``: as for
    :class:`~meterline.producers.client.MeterlineProducer` (the SDK client redacts itself and
    passes None). ``on_delivery``: called for every record, before its own callback.
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
        self._headers = {"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip",
                         "User-Agent": "meterline-python"}  # fmt: skip
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._conn = Connection(url.scheme == "https", url.hostname, url.port,
                                self.config.request_timeout_s, ssl_context)  # fmt: skip
        self._on_delivery = on_delivery
        self._closed = False
        self._start()
        atexit.register(self._close_at_exit)

    def _start(self) -> None:
        self.stats = HttpStats()
        self._buffer = Buffer(self.config)
        self._interrupt = threading.Event()  # cuts a retry's wait short (purge, close)
        self._thread = threading.Thread(target=self._run, name="meterline-http", daemon=True)
        self._thread.start()

    # -- Sink ----------------------------------------------------------------------------------

    def send(self, record: RawRecord, on_delivery: DeliveryCallback | None = None) -> None:
        """Buffer one record for the next request (see the package docstring)."""
        if self.redactor is not None:
            record = self.redactor.record(record)
        self._buffer.add(record, record_line(record), on_delivery)
        self.stats.enqueued += 1

    def poll(self, timeout: float = 0.0) -> int:
        """Reports are served from the posting thread as answers arrive: nothing to do."""
        return 0

    def flush(self, timeout: float = 30.0) -> int:
        """Post what is buffered now and wait up to ``timeout`` seconds until every record
        is reported; return how many are not yet (0: done)."""
        return self._buffer.wait_empty(timeout, self._thread)

    def purge(self) -> None:
        """Give up on everything buffered or in flight: each record's report fires now with
        ``_PURGE_QUEUE`` (so its callback can spool or count it)."""
        items = self._buffer.purge()
        self._interrupt.set()
        self._report(items, KafkaError(KafkaError._PURGE_QUEUE, _PURGED))

    def close(self, timeout: float = 30.0) -> int:
        """Flush up to ``timeout``; purge what is left (reported failed); stop the thread.
        Returns how many records were not delivered."""
        if self._closed:
            return 0
        remaining = self.flush(timeout)
        if remaining:
            log.error("meterline: %d record(s) not delivered to the gateway at close", remaining)
            self.purge()
        self._closed = True
        self._buffer.close()
        self._interrupt.set()
        self._thread.join(timeout=1.0)
        self._conn.close()
        atexit.unregister(self._close_at_exit)
        return remaining

    def after_fork(self) -> None:
        """In a forked child: the parent's buffer and connection stay the parent's; a new
        posting thread serves the child."""
        self._conn.forget()
        self._start()

    def _close_at_exit(self) -> None:
        if not self._closed:
            self.close(timeout=10.0)

    def __enter__(self) -> HttpSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- posting thread ------------------------------------------------------------------------

    def _run(self) -> None:
        buffer = self._buffer
        while True:
            batch = buffer.take()
            if batch is None:
                return
            self._interrupt.clear()
            try:
                self._deliver(batch)
            except Exception:  # never let the thread die: report the batch, keep serving
                log.exception("meterline: the HTTP sink failed posting a batch")
                self._settle(batch, KafkaError(KafkaError._FAIL, "HTTP sink error"))
            buffer.finish(batch)

    def _deliver(self, batch: Batch) -> None:
        attempt = 0
        while not batch.settled:
            body = gzip_lines([i.line for i in batch.items], self.config.gzip_level)
            answer = self._conn.post(self.path, body, self._headers)
            self.stats.requests += 1
            self.stats.last_status = status = answer.status
            if status is not None and 200 <= status < 300:
                self._settle_answer(batch, refused_records(answer.body))
            elif status == 413 and len(batch.items) > 1:
                half = len(batch.items) // 2
                self._buffer.put_back(batch, batch.items[half:])
                batch.items = batch.items[:half]
            elif status is None or status in RETRY_STATUSES:
                reason = "connection" if status is None else str(status)
                why = answer.error or error_message(answer.body) or f"HTTP {status}"
                if not self._back_off(batch, attempt, answer.retry_after, reason, why):
                    self._settle(batch, KafkaError(
                        KafkaError._MSG_TIMED_OUT, f"not delivered to the gateway within "
                        f"{self.config.delivery_timeout_s}s (last: {why})"))  # fmt: skip
                attempt += 1
            else:
                code = KafkaError._AUTHENTICATION if status in (401, 403) else KafkaError._FAIL
                why = error_message(answer.body) or answer.error
                self._settle(batch, KafkaError(code, f"gateway answered {status}: {why}"))

    def _back_off(
        self, batch: Batch, attempt: int, retry_after: float | None, reason: str, why: str
    ) -> bool:
        """Wait before the next attempt; False when that would pass the batch's deadline."""
        c = self.config
        if retry_after is not None:
            wait = min(retry_after, MAX_RETRY_AFTER_S)
        else:
            wait = min(c.backoff_s * 2**attempt, c.max_backoff_s) * random.uniform(0.5, 1.0)
        if time.monotonic() + wait > min(item.deadline for item in batch.items):
            return False
        self.stats.retried(reason)
        if attempt % 10 == 0:
            log.warning("meterline: gateway request of %d record(s) failed (%s); retrying "
                        "in %.1fs", len(batch.items), why, wait)  # fmt: skip
        self._interrupt.wait(wait)
        return True

    # -- reports -------------------------------------------------------------------------------

    def _settle_answer(self, batch: Batch, refused: dict[int, str]) -> None:
        """200: the records the answer's ``errors`` name were refused, the rest delivered."""
        if not self._buffer.claim(batch):
            return
        self._report([it for i, it in enumerate(batch.items) if i not in refused], None)
        for i, reason in refused.items():
            if i < len(batch.items):
                self.stats.refused += 1
                self._report([batch.items[i]], KafkaError(
                    KafkaError.INVALID_RECORD, f"refused by the gateway: {reason}"))  # fmt: skip

    def _settle(self, batch: Batch, err: KafkaError) -> None:
        if self._buffer.claim(batch):
            self._report(batch.items, err)

    def _report(self, items: list[Item], err: KafkaError | None) -> None:
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

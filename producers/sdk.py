"""The SDK client: a bounded in-memory queue in front of a sink (:mod:`~.sink`): a Kafka
producer (``from_kafka``) or the gateway's HTTP API (``from_http``, :mod:`~.http`).

Hot path (every tracking API): capture the caller's arguments, append a small work item to a
bounded ``deque`` and return. A daemon thread turns items into wire records (model
construction, redaction, serialisation) and hands them to the sink (librdkafka's queue, or
the HTTP sink's buffer).

Overflow (queue holds ``max_queue`` items): ``overflow="drop"`` (default) drops the new item,
counts it in ``stats.dropped`` and logs a warning (first drop, then every 1000th);
``overflow="block"`` waits up to ``block_timeout_s`` for room, then drops the same way.
Either way the recording call returns ``False`` / reports status ``"error"``; it never raises.

Limits (``meterline.producers.limits``): after redaction, on the sender thread, oversized attributes
are truncated (counted in ``stats.truncated``) and a record still over
``limits.max_record_bytes`` is not sent (counted in ``stats.oversized``, passed to
``on_error``). The recording call has already returned ``True`` by then.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

from confluent_kafka import KafkaError, KafkaException

from meterline.producers import lifecycle
from meterline.producers.client import MeterlineProducer
from meterline.producers.errors import RecordTooLarge
from meterline.producers.ids import stable_id
from meterline.producers.limits import DEFAULT_LIMITS, Limits
from meterline.producers.redact import DEFAULT_REDACTOR, Redactor
from meterline.producers.sink import DeliveryCallback, ErrorCallback, Sink
from meterline.producers.spool import DEFAULT_MAX_BYTES, Spool
from meterline.producers.stats import SdkStats
from meterline.schemas import ActionEvent, RawRecord, TelemetryEvent, Topics, TrajectoryRecord

if TYPE_CHECKING:
    from meterline.producers.http import HttpConfig

log = logging.getLogger("producers")

#: a delivery error that means refused for good (the gateway's per-record refusals): never spooled
REFUSED = KafkaError.INVALID_RECORD
Built = RawRecord | Iterable[RawRecord] | None
Overflow = Literal["drop", "block"]

__all__ = [
    "REFUSED", "Built", "DeliveryCallback", "ErrorCallback", "MeterlineClient", "SdkStats", "Sink",
    "stable_id",
]


class _Marker:
    """Queued behind pending items by ``flush``; set when the sender thread reaches it."""

    def __init__(self) -> None:
        self.done = threading.Event()


class MeterlineClient:
    """Records agent events without blocking the agent. Thread-safe.

    ``record(event)`` is the generic emit hook (used by LLM auto-instrumentation): it enqueues
    a ready ``schemas`` record. Every record is redacted (every string field: ids, names,
    error types and messages, ``properties`` and ``metadata`` keys and values), stamped
    with ``project`` (when it carries the default project)
    and held to ``limits`` (truncated; not sent when still too large) on the sender thread,
    before the sink sees it.

    Delivery failures: counted in :attr:`stats`, passed to ``on_delivery(record, error)``;
    build, oversize and send errors to ``on_error(message, exception)``.
    """

    def __init__(
        self,
        sink: Sink,
        *,
        project: str = "default",
        agent_id: str | None = None,
        redactor: Redactor = DEFAULT_REDACTOR,
        limits: Limits = DEFAULT_LIMITS,
        max_queue: int = 10_000,
        overflow: Overflow = "drop",
        block_timeout_s: float = 0.5,
        on_delivery: DeliveryCallback | None = None,
        on_error: ErrorCallback | None = None,
        flush_at_exit: bool = True,
        shutdown_timeout_s: float | None = None,
        spool_path: str | os.PathLike[str] | None = None,
        spool_max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be >= 1")
        self.sink = sink
        self.project = project
        self.agent_id = agent_id
        self.redactor = redactor
        self.limits = limits
        self.stats = SdkStats()
        self._max = max_queue
        self._block = overflow == "block"
        self._block_timeout_s = block_timeout_s
        self._on_delivery = on_delivery
        self._on_error = on_error
        self._queue: deque[Any] = deque()
        self._wake = threading.Event()
        self._sleeping = False
        self._closed = False
        self.shutdown_timeout_s = (
            shutdown_timeout_s if shutdown_timeout_s is not None
            else float(os.environ.get("METERLINE_SHUTDOWN_TIMEOUT", "10"))
        )
        spool_path = spool_path or os.environ.get("METERLINE_SPOOL_PATH") or None
        self.spool = Spool(spool_path, spool_max_bytes) if spool_path else None
        self._flush_at_exit = flush_at_exit
        self._start()
        if flush_at_exit:
            atexit.register(self.close_at_exit)
            lifecycle.register(self)
        self._spool_thread: threading.Thread | None = None
        if self.spool is not None:
            self._spool_thread = threading.Thread(
                target=self._resend_spool, name="meterline-spool", daemon=True
            )
            self._spool_thread.start()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="meterline-sender", daemon=True)
        self._thread.start()

    def after_fork(self) -> None:
        """In a forked child: the parent's queued items stay the parent's; a new sender
        thread and (when the sink supports it) a new librdkafka producer serve the child."""
        self._queue = deque()
        self._wake = threading.Event()
        self._sleeping = False
        self.stats = SdkStats()
        if self._closed:
            return
        reopen = getattr(self.sink, "after_fork", None)
        if reopen is None:
            self._closed = True  # recording drops (counted): the sink cannot serve the child
            return
        reopen()
        self._start()

    def _resend_spool(self) -> None:
        """Queue what an earlier process spooled (same event ids: dedupe keeps it exact)."""
        assert self.spool is not None
        try:
            records, done = self.spool.take()
        except Exception:
            log.exception("meterline: reading the spool %s failed", self.spool.path)
            return
        if not records:
            return
        for rec in records:
            if self.submit(_identity, rec):
                self.stats.bump("resent")
            elif self.spool.write(rec):
                self.stats.bump("spooled")
        log.info("meterline: re-sending %d spooled record(s) from %s", len(records),
                 self.spool.path)
        self.flush(self.shutdown_timeout_s * 3)
        done()  # delivered, or spooled again by the failure path

    @classmethod
    def from_kafka(
        cls,
        bootstrap_servers: str,
        *,
        topic_prefix: str = "meterline",
        config: dict[str, Any] | None = None,
        **options: Any,
    ) -> MeterlineClient:
        """A client whose sink is a :class:`MeterlineProducer` (librdkafka)."""
        # the client redacts every record itself (``redactor=``): the producer need not again
        producer = MeterlineProducer(
            bootstrap_servers, topics=Topics(topic_prefix), config=config, redactor=None
        )
        return cls(producer, **options)

    @classmethod
    def from_http(
        cls, endpoint: str, api_key: str | None, *, http: HttpConfig | None = None,
        ssl_context: Any = None, **options: Any,
    ) -> MeterlineClient:  # fmt: skip
        """A client whose sink is an :class:`~meterline.producers.http.HttpSink`: records
        batched and gzip-posted to the gateway's ``/v1/events`` (docs/sdk.md)."""
        from meterline.producers.http import HttpSink

        sink = HttpSink(endpoint, api_key, config=http, redactor=None, ssl_context=ssl_context)
        return cls(sink, **options)

    #: why a recording call returned False (``track_action`` reports it in ``message``)
    drop_reason = "queue full or client closed, event dropped"

    @property
    def queue_depth(self) -> int:
        """Items recorded but not yet taken by the sender thread."""
        return len(self._queue)

    # -- hot path -------------------------------------------------------------------------

    def submit(self, build: Callable[..., Built], *args: Any) -> bool:
        """Enqueue ``build(*args)`` to run on the sender thread; never raises.

        Returns False when the item was dropped (queue full after the overflow policy,
        or client closed).
        """
        q = self._queue
        if len(q) >= self._max and not self._wait_for_room():
            return self._drop()
        if self._closed:
            return self._drop()
        q.append((build, args))
        if self._sleeping:
            self._wake.set()
        return True

    def record(self, event: RawRecord) -> bool:
        """Enqueue a ready wire record (``meterline.schemas.ActionEvent`` / ``TelemetryEvent`` /
        ``TrajectoryRecord``). The emit hook for instrumentation. Never raises."""
        return self.submit(_identity, event)

    emit = record

    def _wait_for_room(self) -> bool:
        if not self._block:
            return False
        deadline = time.monotonic() + self._block_timeout_s
        while len(self._queue) >= self._max:
            if time.monotonic() >= deadline:
                return False
            self._wake.set()
            time.sleep(0.0005)
        return True

    def _drop(self) -> bool:
        self.stats.bump("dropped")
        n = self.stats.dropped
        if n == 1 or n % 1000 == 0:
            why = "client closed" if self._closed else f"queue full ({self._max} items)"
            log.warning("meterline: %s; %d event(s) dropped so far", why, n)
        return False

    # -- sender thread --------------------------------------------------------------------

    def _run(self) -> None:
        q, wake = self._queue, self._wake
        while True:
            try:
                item = q.popleft()
            except IndexError:
                if self._closed:
                    return
                self._sleeping = True
                if not q:
                    self._poll_sink()
                    wake.wait(0.05)
                    wake.clear()
                self._sleeping = False
                continue
            if isinstance(item, _Marker):
                item.done.set()
                continue
            self._process(*item)

    def _build(self, build: Callable[..., Built], args: tuple[Any, ...]) -> list[RawRecord]:
        """The item's wire records, prepared (redacted, limited); errors are reported."""
        self.stats.processed += 1
        try:
            built = build(*args)
            records: list[RawRecord] = (
                [] if built is None
                else [built] if isinstance(built, ActionEvent | TelemetryEvent | TrajectoryRecord)
                else list(built)
            )
        except Exception as exc:
            self._report("build_errors", f"could not build a meterline record: {exc}", exc)
            return []
        out = []
        for rec in records:
            try:
                out.append(self.prepare(rec))
            except RecordTooLarge:
                continue  # counted and reported by prepare
            except Exception as exc:
                self._report("build_errors", f"could not build a meterline record: {exc}", exc)
        return out

    def _process(self, build: Callable[..., Built], args: tuple[Any, ...]) -> None:
        for rec in self._build(build, args):
            try:
                self.sink.send(rec, self.report_delivery)
                self.stats.sent += 1
            except Exception as exc:
                self._report("send_errors", f"record {_id(rec)} not sent: {exc}", exc)

    def _poll_sink(self) -> None:
        try:
            self.sink.poll(0)  # serve delivery reports while idle
        except Exception:
            log.exception("meterline: sink poll failed")

    def prepare(self, record: RawRecord) -> RawRecord:
        """Redact, stamp and limit one record (runs on the sender thread, or in
        ``push_events`` / ``upload_trace``).

        Raises:
            RecordTooLarge: over ``limits.max_record_bytes`` after truncation; already
                counted in ``stats.oversized``, logged and passed to ``on_error``.
        """
        record = self.redactor.record(record)
        if record.project == "default" and self.project != "default":
            record = record.model_copy(update={"project": self.project})
        try:
            limited, cut = self.limits.enforce(record)
        except RecordTooLarge as exc:
            self._report("oversized", str(exc), exc)
            raise
        if cut:
            self.stats.bump("truncated")
            n = self.stats.truncated
            if n == 1 or n % 1000 == 0:
                log.warning("meterline: attributes over the limits truncated in %d record(s) "
                            "so far (latest: %s)", n, cut.as_dict())
        return limited

    def report_delivery(self, record: RawRecord, err: KafkaError | None) -> None:
        """Count one delivery report and pass it to ``on_delivery``. A failed record goes to
        the spool when there is one (and room) and it was not refused (:data:`REFUSED`:
        re-sending it would be refused again), else it is counted failed and passed to
        ``on_error``."""
        if err is None:
            self.stats.bump("delivered")
        elif self.spool is not None and err.code() != REFUSED and self.spool.write(record):
            self.stats.bump("spooled")
        else:
            self._report("failed", f"record {_id(record)} not delivered: {err}",
                         KafkaException(err))
        if self._on_delivery is not None:
            try:
                self._on_delivery(record, err)
            except Exception:
                log.exception("meterline: on_delivery callback failed")

    def _report(self, counter: str, message: str, exc: BaseException | None) -> None:
        self.stats.bump(counter, message)
        log.warning("meterline: %s", message)
        if self._on_error is not None:
            try:
                self._on_error(message, exc)
            except Exception:
                log.exception("meterline: on_error callback failed")

    # -- lifecycle ------------------------------------------------------------------------

    def flush(self, timeout: float = 30.0) -> int:
        """Block until everything recorded so far is built and delivered, or ``timeout``.

        Returns how many items are still pending (queued + undelivered); 0 means done.
        """
        deadline = time.monotonic() + timeout
        marker = _Marker()
        self._queue.append(marker)
        self._wake.set()
        if not marker.done.wait(timeout) or not self._thread.is_alive():
            queued = sum(not isinstance(item, _Marker) for item in list(self._queue))
            return queued + self.sink.flush(0)
        return self.sink.flush(max(0.0, deadline - time.monotonic()))

    def close(self, timeout: float | None = None) -> int:
        """Flush (up to ``timeout``, default ``shutdown_timeout_s``), stop the sender thread
        and close the sink. Later records are dropped (counted).

        What is still undelivered then is purged from librdkafka's queue and, record by
        record, spooled (with a spool) or counted in ``stats.failed`` and passed to
        ``on_error``: nothing is lost silently. Returns how many were not delivered.
        """
        if self._closed:
            return 0
        timeout = self.shutdown_timeout_s if timeout is None else timeout
        deadline = time.monotonic() + timeout
        resending = self._spool_thread
        if resending is not None and resending is not threading.current_thread():
            resending.join(timeout)  # re-sent records are queued before the final flush
        remaining = self.flush(max(0.0, deadline - time.monotonic()))
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=1.0)
        atexit.unregister(self.close_at_exit)
        lifecycle.unregister(self)
        if remaining:
            remaining = self._give_up()
        lost = self.stats.spooled + self.stats.failed
        self.sink.close(0)  # a sink that purges at close (HTTP) reports the rest to us
        return remaining + self.stats.spooled + self.stats.failed - lost

    def _give_up(self) -> int:
        """After the flush timed out: every record not delivered is spooled or counted failed
        (and passed to ``on_error``), one by one. Returns how many."""
        before = self.stats.spooled + self.stats.failed
        purge = getattr(self.sink, "purge", None)
        if purge is not None:
            purge()  # librdkafka reports each purged record to its callback: spooled or failed
        while self._queue:  # items the sender thread never reached
            item = self._queue.popleft()
            if isinstance(item, _Marker):
                continue
            for rec in self._build(*item):
                if self.spool is not None and self.spool.write(rec):
                    self.stats.bump("spooled")
                else:
                    self._report("failed", f"record {_id(rec)} not sent before exit", None)
        lost = self.stats.spooled + self.stats.failed - before
        if lost:
            log.error("meterline: %d record(s) not delivered within the shutdown timeout "
                      "(spooled so far: %d, failed so far: %d)", lost, self.stats.spooled,
                      self.stats.failed)
        return lost

    def close_at_exit(self) -> None:
        """``close`` within ``shutdown_timeout_s`` (run at exit, on SIGTERM/SIGINT, and in
        multiprocessing children)."""
        self.close()

    _close_at_exit = close_at_exit

    def __enter__(self) -> MeterlineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _identity(record: RawRecord) -> RawRecord:
    return record


def _id(record: RawRecord) -> str:
    return record.trace_id if isinstance(record, TrajectoryRecord) else record.event_id

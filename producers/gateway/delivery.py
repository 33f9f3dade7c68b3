"""Producing a request's records and waiting for the broker's acknowledgement of each.

The records go through :class:`meterline.producers.MeterlineProducer` (the SDK's producer: same key,
partitioner and NDJSON framing). ``flush(0)`` after each request frames what the request
added and sends it at once (librdkafka's flush ignores ``linger.ms``), so a request does not
wait for the SDK's linger. A thread serves delivery reports; each report counts down its
request's :class:`Acks`, which wakes the request's coroutine when every record is reported.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, cast

from confluent_kafka import KafkaError

from meterline.producers.batching import BatchConfig
from meterline.producers.client import MeterlineProducer
from meterline.producers.gateway.records import Checked
from meterline.schemas import RawRecord, Topics

log = logging.getLogger(__name__)


class Acks:
    """Delivery reports of one request's records, counted down from the librdkafka thread.

    Made on the event loop; :meth:`expect` (any thread) sets the count before producing.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending = 0
        self._lock = threading.Lock()
        self.failed = 0
        self.last_error: str | None = None
        self.done: asyncio.Future[None] = loop.create_future()

    def expect(self, n: int) -> None:
        with self._lock:
            self._pending += n
            finished = self._pending == 0
        if finished:
            self._loop.call_soon_threadsafe(self._finish)

    def report(self, _record: Any, err: KafkaError | None) -> None:
        with self._lock:
            if err is not None:
                self.failed += 1
                self.last_error = str(err)
            self._pending -= 1
            finished = self._pending == 0
        if finished:
            self._loop.call_soon_threadsafe(self._finish)

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


class GatewayProducer:
    """The SDK producer plus a thread serving its delivery reports. ``produce`` is called
    from one thread at a time (the gateway's executor)."""

    def __init__(self, bootstrap: str, topics: Topics, ack_timeout_s: float,
                 config: dict[str, Any] | None = None) -> None:  # fmt: skip
        conf = {"message.timeout.ms": int(ack_timeout_s * 1000), **(config or {})}
        self.producer = MeterlineProducer(
            bootstrap, topics=topics, config=conf, batching=BatchConfig(linger_s=0.005),
            block_timeout_s=1.0,
        )  # fmt: skip
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="gateway-delivery", daemon=True)
        self._poller.start()

    def produce(self, records: list[Checked], acks: Acks) -> None:
        """Enqueue ``records``, reporting each to ``acks``; a record librdkafka cannot queue
        is reported failed at once (the request is answered 503)."""
        acks.expect(len(records))
        send = self.producer.send_encoded
        report = acks.report
        for r in records:
            try:
                # the record argument only makes the SDK call ``report`` for it
                send(r.topic, r.key, r.value, cast(RawRecord, r), report)
            except Exception as exc:  # QueueFull, KafkaException: this record failed
                report(r, KafkaError(KafkaError._QUEUE_FULL, str(exc)))
        self.producer.flush(0)

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                self.producer.poll(0.1)
            except Exception:  # never let the delivery thread die
                log.exception("gateway: serving delivery reports failed")

    def close(self, timeout_s: float = 10.0) -> int:
        self._stop.set()
        self._poller.join(timeout=2)
        return self.producer.close(timeout_s)

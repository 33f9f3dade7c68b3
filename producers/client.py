"""A thin, non-blocking publisher of meterline records to Kafka."""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from producers.errors import QueueFull
from schemas import ActionEvent, RawRecord, TelemetryEvent, Topics, TrajectoryRecord, encode

log = logging.getLogger(__name__)

DeliveryCallback = Callable[[RawRecord, KafkaError | None], None]

#: librdkafka settings every meterline producer uses; caller settings override them.
DEFAULT_CONFIG: dict[str, Any] = {
    "enable.idempotence": True,  # acks=all, no duplicates or reordering from retries
    "linger.ms": 5,
    "compression.type": "lz4",
    # The Java client's partitioner, so records keyed by trace_id land on the same
    # partition whichever client (librdkafka, aiokafka/Faust, Java) produced them.
    "partitioner": "murmur2_random",
    "queue.buffering.max.messages": 200_000,
    # brokers close idle connections routinely; librdkafka would log each one as a failure
    "log.connection.close": False,
}


@dataclass
class DeliveryStats:
    """Counters readable in-process. Updated from librdkafka's delivery reports."""

    enqueued: int = 0
    delivered: int = 0
    failed: int = 0
    last_error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _delivered(self) -> None:
        with self._lock:
            self.delivered += 1

    def _failed(self, err: KafkaError) -> None:
        with self._lock:
            self.failed += 1
            self.last_error = str(err)


class MeterlineProducer:
    """Publishes action, telemetry and trajectory records to meterline's raw topics.

    Contract:
    - ``send`` serialises and enqueues into librdkafka's queue and returns; delivery happens
      on librdkafka's thread. It blocks only when the queue is full, for at most
      ``block_timeout_s``, then raises :class:`QueueFull` (nothing is dropped silently).
    - Key = trace_id, else event_id, so a trajectory and its events share a partition.
    - Delivery failures are counted in :attr:`stats` and passed to ``on_delivery``.
    - ``flush()`` waits for outstanding records; it also runs at interpreter exit.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        topics: Topics | None = None,
        config: dict[str, Any] | None = None,
        on_delivery: DeliveryCallback | None = None,
        block_timeout_s: float = 5.0,
    ) -> None:
        self.topics = topics or Topics()
        self.stats = DeliveryStats()
        self._on_delivery = on_delivery
        self._block_timeout_s = block_timeout_s
        conf = {**DEFAULT_CONFIG, "bootstrap.servers": bootstrap_servers, **(config or {})}
        self._producer = Producer(conf)
        self._closed = False
        atexit.register(self._flush_at_exit)

    def topic_for(self, record: RawRecord) -> str:
        if isinstance(record, ActionEvent):
            return self.topics.actions
        if isinstance(record, TelemetryEvent):
            return self.topics.telemetry
        if isinstance(record, TrajectoryRecord):
            return self.topics.trajectories
        raise TypeError(f"not a meterline raw record: {type(record).__name__}")

    def send(self, record: RawRecord, on_delivery: DeliveryCallback | None = None) -> None:
        """Enqueue one record for delivery. See the class docstring for the contract.

        ``on_delivery``, when given, is called for this record only (after the producer-wide
        callback), from librdkafka's delivery report: ``(record, None)`` or ``(record, error)``.
        """
        self.send_bytes(
            self.topic_for(record), record.routing_key, encode(record), record, on_delivery
        )

    def send_many(self, records: Iterable[RawRecord]) -> int:
        n = 0
        for record in records:
            self.send(record)
            n += 1
        return n

    def send_bytes(
        self,
        topic: str,
        key: str | bytes | None,
        value: bytes,
        record: RawRecord | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> None:
        """Enqueue pre-serialised bytes (also used by tests to send invalid records)."""
        callback = self._callback_for(record, on_delivery)
        deadline = time.monotonic() + self._block_timeout_s
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=callback)
                break
            except BufferError:
                if time.monotonic() >= deadline:
                    raise QueueFull(
                        f"producer queue full for {self._block_timeout_s}s; record not sent"
                    ) from None
                self._producer.poll(0.05)
        self.stats.enqueued += 1
        self._producer.poll(0)

    def _callback_for(
        self, record: RawRecord | None, per_record: DeliveryCallback | None = None
    ) -> Callable[[KafkaError | None, Message], None]:
        stats, user_cb = self.stats, self._on_delivery

        def _report(err: KafkaError | None, _msg: Message) -> None:
            if err is None:
                stats._delivered()
            else:
                stats._failed(err)
                log.warning("meterline: delivery failed: %s", err)
            if user_cb is not None and record is not None:
                user_cb(record, err)
            if per_record is not None and record is not None:
                per_record(record, err)

        return _report

    def poll(self, timeout: float = 0.0) -> int:
        """Serve pending delivery reports (callbacks); return how many were served."""
        return int(self._producer.poll(timeout))

    def flush(self, timeout: float = 30.0) -> int:
        """Wait up to ``timeout`` seconds for delivery; return how many are still queued."""
        return int(self._producer.flush(timeout))

    def close(self, timeout: float = 30.0) -> int:
        remaining = self.flush(timeout)
        self._closed = True
        atexit.unregister(self._flush_at_exit)
        if remaining:
            log.error("meterline: %d record(s) not delivered at close", remaining)
        return remaining

    def _flush_at_exit(self) -> None:
        if not self._closed:
            self.close(timeout=10.0)

    def __enter__(self) -> MeterlineProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""A thin, non-blocking publisher of meterline records to Kafka."""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from meterline.producers.batching import Batch, BatchConfig, Batcher
from meterline.producers.errors import QueueFull
from meterline.producers.partitioner import partition_for
from meterline.producers.redact import DEFAULT_REDACTOR, Redactor
from meterline.schemas import RawRecord, Topics, encode
from meterline.schemas.framing import BATCH_HEADERS, frameable, join

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

#: How long a failed partition-count lookup is remembered (records go out unframed meanwhile).
_METADATA_RETRY_S = 5.0
#: librdkafka handles inherited through fork: destroying one in the child could hang
_orphans: list[Producer] = []


@dataclass
class DeliveryStats:
    """Counters readable in-process. Updated from librdkafka's delivery reports."""

    enqueued: int = 0
    delivered: int = 0
    failed: int = 0
    last_error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _delivered(self, records: int = 1) -> None:
        with self._lock:
            self.delivered += records

    def _failed(self, err: KafkaError, records: int = 1) -> None:
        with self._lock:
            self.failed += records
            self.last_error = str(err)


class MeterlineProducer:
    """Publishes action, telemetry and trajectory records to meterline's raw topics.

    Contract:
    - ``send`` serialises and enqueues into librdkafka's queue and returns; delivery happens
      on librdkafka's thread. It blocks only when the queue is full, for at most
      ``block_timeout_s``, then raises :class:`QueueFull` (nothing is dropped silently).
    - Key = trace_id, else event_id, so a trajectory and its events share a partition.
    - Framing (``batching``, on by default): records bound for the same partition within
      ``linger_s`` go out as one NDJSON batch message (:mod:`meterline.schemas.framing`), on exactly
      the partition each record's key maps to. Each record still gets its own delivery
      report. When the topic's partition count is unknown (broker unreachable), records go
      out one per message instead. ``batching=BatchConfig(max_records=1)`` turns it off.
    - Redaction (``redactor``, default :data:`DEFAULT_REDACTOR`): every record ``send``
      takes, and the bytes ``send_encoded`` / ``send_bytes`` take, are redacted before they
      are queued. ``redactor=None`` turns it off, for data already redacted (the SDK client
      redacts on its sender thread and creates its producer so).
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
        batching: BatchConfig | None = None,
        redactor: Redactor | None = DEFAULT_REDACTOR,
    ) -> None:
        self.topics = topics or Topics()
        self.redactor = redactor
        self.stats = DeliveryStats()
        self._on_delivery = on_delivery
        self._block_timeout_s = block_timeout_s
        conf = {**DEFAULT_CONFIG, "bootstrap.servers": bootstrap_servers, **(config or {})}
        self._conf = conf
        self._producer = Producer(conf)
        self._closed = False
        self._batcher = Batcher(batching or BatchConfig())
        self._batch_lock = threading.RLock()
        self._partitions: dict[str, tuple[int | None, float]] = {}
        self._ticker: threading.Thread | None = None
        self._stop_ticker = threading.Event()
        atexit.register(self._flush_at_exit)

    def topic_for(self, record: RawRecord) -> str:
        return self.topics.for_record(record)

    def send(self, record: RawRecord, on_delivery: DeliveryCallback | None = None) -> None:
        """Enqueue one record for delivery. See the class docstring for the contract.

        ``on_delivery``, when given, is called for this record only (after the producer-wide
        callback), from librdkafka's delivery report: ``(record, None)`` or ``(record, error)``.
        """
        if self.redactor is not None:
            record = self.redactor.record(record)
        self._send_encoded(
            self.topic_for(record), record.routing_key.encode(), encode(record), record,
            on_delivery,
        )

    def send_encoded(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        record: RawRecord | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> None:
        """Enqueue one already-serialised record (redacted unless ``redactor=None``), framed
        into its partition's batch when batching is on (``send`` is this after ``encode``)."""
        if self.redactor is not None:
            value = self.redactor.encoded(value)
        self._send_encoded(topic, key, value, record, on_delivery)

    def _send_encoded(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        record: RawRecord | None,
        on_delivery: DeliveryCallback | None,
    ) -> None:
        if self._batcher.config.enabled and frameable(value):
            partitions = self._partition_count(topic)
            if partitions:
                self._add_to_batch(
                    topic, partition_for(key, partitions), key, value,
                    self._own_callback(record, on_delivery),
                )
                return
        self._send_bytes(topic, key, value, record, on_delivery)

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
        """Enqueue pre-serialised bytes as one message of their own, never framed (also used
        by tests to send invalid records); redacted unless ``redactor=None``."""
        if self.redactor is not None:
            value = self.redactor.encoded(value)
        self._send_bytes(topic, key, value, record, on_delivery)

    def _send_bytes(
        self,
        topic: str,
        key: str | bytes | None,
        value: bytes,
        record: RawRecord | None,
        on_delivery: DeliveryCallback | None,
    ) -> None:
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

    # -- framing ------------------------------------------------------------------------------

    def _partition_count(self, topic: str) -> int | None:
        """The topic's partition count from broker metadata, cached (failures for a while)."""
        known = self._partitions.get(topic)
        now = time.monotonic()
        if known is not None and (known[0] is not None or now < known[1]):
            return known[0]
        count: int | None = None
        try:
            meta = self._producer.list_topics(topic, timeout=2.0).topics.get(topic)
            if meta is not None and meta.error is None and meta.partitions:
                count = len(meta.partitions)
        except KafkaException as exc:
            log.info("meterline: no metadata for %s (%s); sending unframed for now", topic, exc)
        self._partitions[topic] = (count, now + _METADATA_RETRY_S)
        return count

    def _add_to_batch(
        self,
        topic: str,
        partition: int,
        key: bytes,
        value: bytes,
        callback: Callable[[KafkaError | None, Message], None] | None,
    ) -> None:
        with self._batch_lock:
            ready = self._batcher.add(topic, partition, key, value, callback)
            self.stats.enqueued += 1
            for batch in ready:
                self._produce_batch(batch)
        if self._ticker is None:
            self._start_ticker()

    def _produce_batch(self, batch: Batch) -> None:
        """Hand one framed batch to librdkafka (caller holds the batch lock). A batch that
        cannot be queued within ``block_timeout_s`` is reported failed to every record."""
        callbacks, counted, count = batch.callbacks, batch.counted, self._count_delivery

        def _report_all(err: KafkaError | None, msg: Message) -> None:
            if counted:
                count(err, msg, counted)
            for cb in callbacks:
                cb(err, msg)

        deadline = time.monotonic() + self._block_timeout_s
        while True:
            try:
                self._producer.produce(
                    batch.topic,
                    value=join(batch.values),
                    key=batch.key,
                    partition=batch.partition,
                    headers=BATCH_HEADERS,
                    on_delivery=_report_all,
                )
                return
            except BufferError:
                if time.monotonic() >= deadline:
                    err = KafkaError(KafkaError._QUEUE_FULL, "producer queue full; batch not sent")
                    _report_all(err, None)  # type: ignore[arg-type]
                    return
                self._producer.poll(0.05)
            except KafkaException as exc:  # e.g. the batch is over message.max.bytes
                kerr = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) \
                    else KafkaError(KafkaError._FAIL, str(exc))
                log.warning("meterline: a batch of %d record(s) was refused: %s",
                            len(batch.values), kerr)
                _report_all(kerr, None)  # type: ignore[arg-type]
                return

    def _produce_due(self, *, everything: bool = False) -> None:
        with self._batch_lock:
            batches = self._batcher.drain() if everything else self._batcher.due()
            for batch in batches:
                self._produce_batch(batch)

    def _start_ticker(self) -> None:
        with self._batch_lock:
            if self._ticker is not None:
                return
            self._ticker = threading.Thread(
                target=self._tick, name="meterline-batcher", daemon=True
            )
            self._ticker.start()

    def _tick(self) -> None:
        interval = max(self._batcher.config.linger_s / 2, 0.001)
        while not self._stop_ticker.wait(interval):
            try:
                self._produce_due()
                self._producer.poll(0)
            except Exception:  # never let the ticker die: flush() still drains
                log.exception("meterline: producing a batch failed")

    def _callback_for(
        self, record: RawRecord | None, per_record: DeliveryCallback | None = None
    ) -> Callable[[KafkaError | None, Message], None]:
        return self._own_callback(record, per_record) or self._count_delivery

    def _own_callback(
        self, record: RawRecord | None, per_record: DeliveryCallback | None = None
    ) -> Callable[[KafkaError | None, Message], None] | None:
        """The record's delivery callback (counting it too), or None when nothing per record
        is to be called (then only counted)."""
        count, user_cb = self._count_delivery, self._on_delivery
        if per_record is None and (record is None or user_cb is None):
            return None  # nothing per record to call: no closure per record

        def _report(err: KafkaError | None, _msg: Message) -> None:
            count(err, _msg)
            if user_cb is not None and record is not None:
                user_cb(record, err)
            if per_record is not None and record is not None:
                per_record(record, err)

        return _report

    def _count_delivery(self, err: KafkaError | None, _msg: Message, records: int = 1) -> None:
        """The delivery report of ``records`` records with no callback of their own (one
        message, or one batch of them): counted only."""
        if err is None:
            self.stats._delivered(records)
        else:
            self.stats._failed(err, records)
            log.warning("meterline: delivery of %d record(s) failed: %s", records, err)

    def poll(self, timeout: float = 0.0) -> int:
        """Serve pending delivery reports (callbacks); return how many were served."""
        self._produce_due()
        return int(self._producer.poll(timeout))

    def flush(self, timeout: float = 30.0) -> int:
        """Wait up to ``timeout`` seconds for delivery; return how many are still queued."""
        self._produce_due(everything=True)
        return int(self._producer.flush(timeout))

    def purge(self) -> None:
        """Give up on everything queued or in flight: each record's delivery report fires
        with a purge error (so its callback can spool or count it)."""
        self._produce_due(everything=True)
        self._producer.purge(in_queue=True, in_flight=True, blocking=False)
        self._producer.flush(2.0)  # serve the purged records' reports

    def after_fork(self) -> None:
        """In a forked child: librdkafka's threads stayed in the parent; start a new producer
        (the parent's is kept referenced, never destroyed here) with empty batches."""
        _orphans.append(self._producer)
        self._producer = Producer(self._conf)
        self._batcher = Batcher(self._batcher.config)
        self._batch_lock = threading.RLock()
        self._ticker = None
        self._stop_ticker = threading.Event()
        self.stats = DeliveryStats()

    def close(self, timeout: float = 30.0) -> int:
        self._stop_ticker.set()
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

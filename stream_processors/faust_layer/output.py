"""The processor's output producer: librdkafka, batch acks, framed outputs.

Faust's own ``topic.send`` costs one event-loop round trip per message (measured: the worker
spent ~0.5 ms per event there). Here ``send`` is a non-blocking C call and ``flush`` waits
for every acknowledgement of the batch in a thread, without blocking the event loop.
Table changelogs go through here too (:mod:`meterline.stream_processors.state.changelog`). Faust
still owns
consumption, offsets, table recovery and standby replicas.

Framing (``send_framed``): the hot outputs (enriched events, trajectory states) of one source
partition go out as NDJSON batch messages (:mod:`meterline.schemas.framing`, as the SDK frames raw
records), up to :data:`FRAME_MAX_RECORDS` records or :data:`FRAME_MAX_BYTES` each, keyed by
their first record's key. One ``produce()`` per event was ~10% of the worker, and every
message also costs the broker and the sink. Raw topics are co-partitioned by that key with
the same partitioner, so a source partition's records share one output partition; a batch
message lands where its first record's key maps. A record that cannot be framed (it contains
a raw newline, or is over :data:`FRAME_MAX_BYTES`) goes out alone, after the open batch of
its group, so a group's records keep their order.

Size guard: every record is checked against its topic's ``max.message.bytes`` before it is
produced (:class:`~meterline.stream_processors.sizes.TopicLimits`, Kafka's rule mirrored: the record
batch with its framing). A record that would not fit raises
:class:`~meterline.stream_processors.sizes.OutputTooLarge` and nothing is produced, so the caller
can
dead-letter the input instead of the broker refusing the batch; framed batch messages are
cut to fit their topic.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from meterline.schemas.framing import BATCH_HEADERS
from meterline.stream_processors.errors import ProcessorError
from meterline.stream_processors.sizes import OutputTooLarge, TopicLimits, batch_bytes

#: Largest output message. Outputs are larger than the records they come from: an enriched
#: event carries its trajectory, a dead letter carries the rejected bytes base64-encoded.
#: With 1 MB records that is up to ~2.7 MB; topics are created to accept this much
#: (``admin.ensure_topics``: ``max.message.bytes``).
MAX_MESSAGE_BYTES = 8 * 1_048_576

CONFIG: dict[str, Any] = {
    "enable.idempotence": True,
    "message.max.bytes": MAX_MESSAGE_BYTES,
    "linger.ms": 10,
    "compression.type": "lz4",
    "partitioner": "murmur2_random",  # same partitions as the raw topics' producers
    "queue.buffering.max.messages": 500_000,
    "log.connection.close": False,
    # only failures are reported: a Python callback per acknowledged record cost ~1.5 µs of
    # the worker's CPU per output record, and success needs no action (flush waits for all)
    "delivery.report.only.error": True,
}


#: Most records in one framed output message: the sink reads whole messages, and a sink batch
#: is ``batch_size`` records give or take one message.
FRAME_MAX_RECORDS = 500
#: Most bytes (records and newlines) in one framed output message.
FRAME_MAX_BYTES = 1_048_576


class OutputDeliveryError(ProcessorError):
    """The broker refused an output record. The batch is not acknowledged: it replays."""


def frame_max_bytes(limit: int) -> int:
    """Most bytes of records in one framed message to a topic of ``limit`` bytes: room for
    the key (an id of at most 256 characters), the batch header and framing, lz4's worst case."""
    return min(FRAME_MAX_BYTES, limit - limit // 8192 - 4_096)


class BatchOutput:
    """``config`` overrides :data:`CONFIG`; it carries the Kafka access settings (TLS, SASL:
    ``ProcessorConfig.kafka_access``). ``limits``: each topic's ``max.message.bytes``
    (default: :data:`MAX_MESSAGE_BYTES` for every topic)."""

    def __init__(
        self, bootstrap: str, config: dict[str, Any] | None = None,
        limits: TopicLimits | None = None,
    ) -> None:  # fmt: skip
        config = config or {}
        self._lock = threading.Lock()
        self.limits = limits if limits is not None else TopicLimits({}, MAX_MESSAGE_BYTES)
        known = [*self.limits.limits.values(), self.limits.default]
        sizes = {
            "message.max.bytes": max(MAX_MESSAGE_BYTES, *known),
            # several records share a batch only up to batch.size: under the smallest limit
            "batch.size": min(1_000_000, min(known) - 1_024),
        }
        self._frame_max: dict[str, int] = {}
        # one callback for the producer, not one per produce() call (~0.2-1 µs less a record)
        self._producer = Producer({
            **CONFIG, **sizes, "bootstrap.servers": bootstrap, **config,
            "on_delivery": self._on_delivery,
        })  # fmt: skip
        self._errors: list[str] = []
        self.sent: dict[str, int] = {}  # records sent per topic (read by metrics)
        #: open batch messages by (topic, group): [first key, records, bytes]
        self._frames: dict[tuple[str, int], list[Any]] = {}

    def _on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            with self._lock:
                self._errors.append(str(err))

    def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> None:
        """Enqueue; never waits on the broker (polls the queue free when it is full).
        ``partition`` None: the key's partition (murmur2); ``value`` None: a tombstone.

        Raises:
            OutputTooLarge: the record would exceed the topic's limit; nothing is enqueued.
        """
        self.check(topic, key, value)
        self.sent[topic] = self.sent.get(topic, 0) + 1  # per topic, read by metrics
        if partition is None:
            self._produce(topic, key, value)
        else:
            self._produce(topic, key, value, partition=partition)

    def check(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        """Raise :class:`OutputTooLarge` if the record would exceed the topic's limit."""
        limit = self.limits[topic]
        # a record far below the limit needs no exact count (the hot path)
        size = len(value) + len(key or b"") if value is not None else 0
        if size > limit - limit // 4_096 - 1_024:
            size = batch_bytes(key, value)
            if size > limit:
                raise OutputTooLarge(topic, size, limit)

    def frame_max(self, topic: str) -> int:
        found = self._frame_max.get(topic)
        if found is None:
            found = self._frame_max[topic] = frame_max_bytes(self.limits[topic])
        return found

    def send_framed(self, topic: str, group: int, key: bytes, value: bytes) -> None:
        """Enqueue ``value`` into the open batch message of ``(topic, group)`` (``group``:
        the record's source partition); it goes out when full or at :meth:`flush`.

        Raises:
            OutputTooLarge: as :meth:`send` (checked before anything is enqueued).
        """
        frame = self._frames.get((topic, group))
        size = len(value)
        most = self._frame_max.get(topic) or self.frame_max(topic)
        if size >= most or b"\n" in value:  # alone, after its group's open batch
            self.check(topic, key, value)
            if frame is not None:
                self._emit(topic, self._frames.pop((topic, group)))
            self.send(topic, key, value)
            return
        self.sent[topic] = self.sent.get(topic, 0) + 1
        if frame is not None and frame[2] + size + 1 > most:
            self._emit(topic, self._frames.pop((topic, group)))
            frame = None
        if frame is None:
            self._frames[(topic, group)] = [key, [value], size]
            return
        values = frame[1]
        values.append(value)
        frame[2] += size + 1
        if len(values) >= FRAME_MAX_RECORDS:
            self._emit(topic, self._frames.pop((topic, group)))

    def _emit(self, topic: str, frame: list[Any]) -> None:
        """Produce one open batch (a single record goes out unframed)."""
        key, values = frame[0], frame[1]
        if len(values) > 1:
            self._produce(topic, key, b"\n".join(values), headers=BATCH_HEADERS)
        else:
            self._produce(topic, key, values[0])

    def _produce(self, topic: str, key: bytes | None, value: bytes | None, **kw: Any) -> None:
        """``produce()``, polling the queue free while it is full."""
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, **kw)
                return
            except BufferError:
                self._producer.poll(0.05)

    def emit_frames(self) -> None:
        """Produce every open batch message (:meth:`flush` does this first)."""
        frames, self._frames = self._frames, {}
        for (topic, _), frame in frames.items():
            self._emit(topic, frame)

    async def flush(self, timeout_s: float = 60.0) -> None:
        """Produce the open batch messages, then wait until every record sent so far is
        acknowledged.

        Raises:
            OutputDeliveryError: a record was refused or not acknowledged within the timeout.
        """
        self.emit_frames()
        loop = asyncio.get_running_loop()
        remaining = await loop.run_in_executor(None, self._producer.flush, timeout_s)
        with self._lock:
            errors, self._errors = self._errors, []
        if remaining or errors:
            detail = errors[0] if errors else f"{remaining} record(s) unacknowledged"
            raise OutputDeliveryError(f"output not delivered ({len(errors)} errors): {detail}")

    def close(self) -> None:
        self.emit_frames()
        self._producer.flush(30)

"""The processor's output producer: librdkafka, one Kafka message per record, batch acks.

Faust's own ``topic.send`` costs one event-loop round trip per message (measured: the worker
spent ~0.5 ms per event there). Here ``send`` is a non-blocking C call and ``flush`` waits
for every acknowledgement of the batch in a thread, without blocking the event loop.
Table changelogs go through here too (:mod:`stream_processors.changelog`). Faust still owns
consumption, offsets, table recovery and standby replicas.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from producers.config import access_config_from_env
from stream_processors.errors import ProcessorError

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


class OutputDeliveryError(ProcessorError):
    """The broker refused an output record. The batch is not acknowledged: it replays."""


class BatchOutput:
    """``config`` overrides :data:`CONFIG`. Kafka access (TLS, SASL) comes from the
    ``METERLINE_KAFKA_*`` environment the worker process runs with, unless ``config`` sets
    ``security.protocol`` itself."""

    def __init__(self, bootstrap: str, config: dict[str, Any] | None = None) -> None:
        config = config or {}
        access = {} if "security.protocol" in config else access_config_from_env()
        self._lock = threading.Lock()
        # one callback for the producer, not one per produce() call (~0.2-1 µs less a record)
        self._producer = Producer({
            **CONFIG, **access, "bootstrap.servers": bootstrap, **config,
            "on_delivery": self._on_delivery,
        })  # fmt: skip
        self._errors: list[str] = []
        self.sent: dict[str, int] = {}  # records sent per topic (read by metrics)

    def _on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            with self._lock:
                self._errors.append(str(err))

    def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> None:
        """Enqueue; never waits on the broker (polls the queue free when it is full).
        ``partition`` None: the key's partition (murmur2); ``value`` None: a tombstone."""
        self.sent[topic] = self.sent.get(topic, 0) + 1  # per topic, read by metrics
        while True:
            try:
                if partition is None:
                    self._producer.produce(topic, value=value, key=key)
                else:
                    self._producer.produce(topic, value=value, key=key, partition=partition)
                return
            except BufferError:
                self._producer.poll(0.05)

    async def flush(self, timeout_s: float = 60.0) -> None:
        """Wait until every record sent so far is acknowledged.

        Raises:
            OutputDeliveryError: a record was refused or not acknowledged within the timeout.
        """
        loop = asyncio.get_running_loop()
        remaining = await loop.run_in_executor(None, self._producer.flush, timeout_s)
        with self._lock:
            errors, self._errors = self._errors, []
        if remaining or errors:
            detail = errors[0] if errors else f"{remaining} record(s) unacknowledged"
            raise OutputDeliveryError(f"output not delivered ({len(errors)} errors): {detail}")

    def close(self) -> None:
        self._producer.flush(30)

"""An in-memory :class:`~meterline.producers.sdk.Sink` for unit tests of code that uses the SDK.

Behaves like the Kafka sink where it matters to callers: delivery reports arrive later
(on ``poll``/``flush``), failures can be injected, and the bytes it "sends" are the real
wire bytes (``meterline.schemas.encode``).
"""

from __future__ import annotations

import threading
from typing import Any

from confluent_kafka import KafkaError

from meterline.producers.errors import QueueFull
from meterline.producers.sink import DeliveryCallback
from meterline.schemas import RawRecord, Topics, encode
from meterline.schemas.events import ActionEvent, TelemetryEvent


class MemorySink:
    """Records what would have been produced. ``fail_deliveries(n)`` makes the next ``n``
    deliveries fail; ``refuse_sends(n)`` makes the next ``n`` sends raise :class:`QueueFull`."""

    def __init__(self, topics: Topics | None = None) -> None:
        self.topics = topics or Topics()
        self.records: list[RawRecord] = []
        self.messages: list[tuple[str, str, bytes]] = []  # (topic, key, value)
        self._pending: list[tuple[RawRecord, DeliveryCallback | None]] = []
        self._fail = 0
        self._refuse = 0
        self._lock = threading.Lock()
        self._delivering = threading.RLock()
        self.closed = False

    def fail_deliveries(self, n: int) -> None:
        self._fail = n

    def refuse_sends(self, n: int) -> None:
        self._refuse = n

    def send(self, record: RawRecord, on_delivery: DeliveryCallback | None = None) -> None:
        with self._lock:
            if self._refuse > 0:
                self._refuse -= 1
                raise QueueFull("memory sink refused the record")
            self._pending.append((record, on_delivery))

    def poll(self, timeout: float = 0.0) -> int:
        with self._delivering:  # like librdkafka: flush returns after in-flight reports
            return self._deliver()

    def _deliver(self) -> int:
        with self._lock:
            pending, self._pending = self._pending, []
        for record, callback in pending:
            err: KafkaError | None = None
            with self._lock:
                if self._fail > 0:
                    self._fail -= 1
                    err = KafkaError(KafkaError._MSG_TIMED_OUT)
                else:
                    self.records.append(record)
                    self.messages.append(
                        (self._topic(record), record.routing_key, encode(record))
                    )
            if callback is not None:
                callback(record, err)
        return len(pending)

    def flush(self, timeout: float = 30.0) -> int:
        self.poll(0)
        return 0

    def close(self, timeout: float = 30.0) -> int:
        self.flush(timeout)
        self.closed = True
        return 0

    def _topic(self, record: RawRecord) -> str:
        if isinstance(record, ActionEvent):
            return self.topics.actions
        if isinstance(record, TelemetryEvent):
            return self.topics.telemetry
        return self.topics.trajectories

    def of_type(self, kind: type[Any]) -> list[Any]:
        return [r for r in self.records if isinstance(r, kind)]

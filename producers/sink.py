"""Where the SDK client's built records go: the :class:`Sink` protocol and its callback types.

Two sinks ship: :class:`meterline.producers.client.MeterlineProducer` (Kafka, librdkafka) and
:class:`meterline.producers.http.HttpSink` (the gateway's ``/v1/events``);
:class:`meterline.producers.testing.MemorySink` serves unit tests. A sink may also have
``purge()`` (give up on everything pending, reporting each record to its callback) and
``after_fork()`` (serve a forked child); the client uses them when they are there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from confluent_kafka import KafkaError

from meterline.schemas import RawRecord

#: ``(record, None)`` once delivered, ``(record, error)`` once given up on
DeliveryCallback = Callable[[RawRecord, KafkaError | None], None]
ErrorCallback = Callable[[str, BaseException | None], None]

__all__ = ["DeliveryCallback", "ErrorCallback", "Sink"]


class Sink(Protocol):
    """Where built records go: :class:`MeterlineProducer` or :class:`HttpSink` in production,
    a fake in unit tests."""

    def send(self, record: RawRecord, on_delivery: DeliveryCallback | None = None) -> None: ...

    def poll(self, timeout: float = 0.0) -> int: ...

    def flush(self, timeout: float = 30.0) -> int: ...

    def close(self, timeout: float = 30.0) -> int: ...

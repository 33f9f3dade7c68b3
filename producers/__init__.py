"""meterline producers: publish agent records to Kafka.

Importable with only ``confluent-kafka`` and ``pydantic`` installed (the minimal install).
"""

from producers.client import DEFAULT_CONFIG, DeliveryStats, MeterlineProducer
from producers.errors import DeliveryFailed, ProducerError, QueueFull

__all__ = [
    "DEFAULT_CONFIG",
    "DeliveryFailed",
    "DeliveryStats",
    "MeterlineProducer",
    "ProducerError",
    "QueueFull",
]

"""Errors raised by meterline's stream processors and runtime."""

from __future__ import annotations


class ProcessorError(Exception):
    """Base class for every error raised by :mod:`stream_processors`."""


class InvalidMessage(ProcessorError):
    """A Kafka record that cannot be processed. It goes to the dead-letter topic.

    Carries where the record came from so the dead letter can point back at it: topic,
    partition, offset, and ``item``, the record's index inside a batch message (0 otherwise).
    """

    def __init__(
        self,
        reason: str,
        *,
        topic: str,
        partition: int,
        offset: int,
        item: int = 0,
        error_type: str = "invalid_record",
    ) -> None:
        where = f"{topic}[{partition}]@{offset}" + (f"#{item}" if item else "")
        super().__init__(f"{where}: {reason}")
        self.reason = reason
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.item = item
        self.error_type = error_type


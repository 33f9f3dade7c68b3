"""Keep the sink in its consumer group while it cannot take more records.

    insert slow or failing -> pause every assigned partition -> poll (returns nothing) ->
    insert done -> resume each partition at the offset it had reached

librdkafka leaves the group when the application does not poll for ``max.poll.interval.ms``;
a sink that waits out a ClickHouse outage without polling would be rebalanced out, its batch
replayed by another member (arroyo answers ``MessageRejected`` the same way: pause, keep
polling). While paused nothing is fetched; a record that still arrives (a partition assigned
meanwhile) is sought back and its partition paused, so nothing is skipped. :class:`Held`
partitions (records this sink cannot decode, :mod:`meterline.sinks.batch`) stay paused until they
are revoked.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import NamedTuple

from confluent_kafka import Consumer, KafkaException, TopicPartition

log = logging.getLogger(__name__)

#: (topic, partition)
Partition = tuple[str, int]


class Held(NamedTuple):
    """A partition held at ``offset`` (not committed past it) for ``reason``."""

    offset: int
    reason: str


class Backpressure:
    """Pauses and resumes ``consumer``'s partitions; polls it while paused."""

    def __init__(self, consumer: Consumer, poll_s: float = 0.2) -> None:
        self._consumer = consumer
        self.poll_s = poll_s
        self.paused = False
        #: where each partition paused for backpressure resumes (its next offset to read)
        self._resume_at: dict[Partition, int] = {}
        #: partitions held on records this sink cannot decode (paused until revoked)
        self.held: dict[Partition, Held] = {}

    def pause(self) -> None:
        """Pause every assigned partition (no-op when paused)."""
        if self.paused:
            return
        assigned = self._consumer.assignment()
        self._resume_at = {
            (tp.topic, tp.partition): tp.offset for tp in self._consumer.position(assigned)
        }
        self._consumer.pause(assigned)
        self.paused = True
        log.warning("sink: paused %d partitions while the write waits; polling on", len(assigned))

    def resume(self) -> None:
        """Resume the partitions paused by :meth:`pause` (not the held ones), each at the
        offset it had reached (no-op when not paused)."""
        if not self.paused:
            return
        self.paused = False
        assigned = {(tp.topic, tp.partition) for tp in self._consumer.assignment()}
        parts = [p for p in assigned if p not in self.held]
        self._consumer.resume([TopicPartition(t, p) for t, p in parts])
        for topic, partition in parts:
            offset = self._resume_at.get((topic, partition), -1)
            if offset >= 0:
                self._seek(topic, partition, offset)
        self._resume_at = {}
        log.info("sink: resumed %d partitions", len(parts))

    def wait(self, seconds: float, stop: threading.Event | None = None) -> bool:
        """Pause and poll for ``seconds``; True when ``stop`` was set meanwhile."""
        self.pause()
        deadline = time.monotonic() + seconds
        while not (stop is not None and stop.is_set()):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.poll(min(left, self.poll_s))
        return True

    def poll(self, timeout_s: float) -> None:
        """Poll once while paused: serves the group protocol; a record that still arrives is
        put back (sought to and its partition paused)."""
        msg = self._consumer.poll(timeout_s)
        if msg is None:
            return
        if msg.error() is not None:
            log.warning("sink: consumer error while paused: %s", msg.error())
            return
        topic, partition, offset = str(msg.topic()), int(msg.partition() or 0), msg.offset()
        at = offset if offset is not None else -1
        self._consumer.pause([TopicPartition(topic, partition)])
        if at >= 0:
            self._resume_at[(topic, partition)] = at
            self._seek(topic, partition, at)

    def hold(self, topic: str, partition: int, offset: int, reason: str) -> None:
        """Pause ``partition`` at ``offset`` until it is revoked."""
        self.held[(topic, partition)] = Held(offset, reason)
        self._consumer.pause([TopicPartition(topic, partition)])
        self._seek(topic, partition, offset)

    def revoked(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.held.pop((tp.topic, tp.partition), None)
            self._resume_at.pop((tp.topic, tp.partition), None)

    def _seek(self, topic: str, partition: int, offset: int) -> None:
        try:
            self._consumer.seek(TopicPartition(topic, partition, offset))
        except KafkaException as exc:  # e.g. revoked meanwhile: its next owner reads it
            log.warning("sink: seek of %s[%s] to %s failed: %s", topic, partition, offset, exc)

"""The sink: a batch consumer from Kafka into ClickHouse, committing after each insert.

    poll a batch -> decode per record -> hold or assemble -> insert per table -> commit
    offsets -> next batch

One module per step, assembled here in :meth:`ClickHouseSink.poll_once`:
:mod:`meterline.sinks.decode` (a message's records -> rows, an undecodable record -> a dead-letter
row), :mod:`meterline.sinks.batch` (the batch and the offsets to commit; partitions held on
records this sink cannot decode), :mod:`meterline.sinks.write` (the inserts, refused rows
isolated into dead letters). A batch holds about ``batch_size`` records: the number of messages
asked of the consumer follows the records per message of the last batch.

Offsets are committed only after every insert of the batch returned, so a crash replays
the batch (at-least-once); ReplacingMergeTree keyed by id absorbs the replay. Each insert
carries a deduplication token derived from its messages, so ClickHouse drops a repeat of the
identical insert (a retry after an ambiguous failure) before any merge. A failed
insert is retried with backoff while the batch is held (no new polls): the sink applies
backpressure instead of buffering without bound. An insert refused for its data (a value a
column or view cannot hold) is split until the refused rows are found
(:mod:`meterline.sinks.isolate`);
those go to ``dead_letters`` (``rejected_by_clickhouse``, stage ``sink``, the original
message) and the rest of the batch is written, so one bad row cannot stall every tenant.

Backpressure keeps the sink in its group (:mod:`meterline.sinks.backpressure`): the inserts run on a
writer thread; an insert that takes longer than ``pause_after_s``, and every retry wait,
pauses the assigned partitions and keeps polling, so an outage longer than
``max.poll.interval.ms`` neither rebalances the sink out nor replays its batch.

Records the sink cannot decode because they come from a newer processor (a newer
``schema_version``), or a storm of undecodable records (more than ``undecodable_max_ratio``
of the last ~1,000), are held, not dead-lettered: the rows before them are written, the
partition is committed up to the first such message and paused there, ``held`` (readiness),
a log line and ``meterline_sink_held_partitions`` say so, and a sink that can decode them
(deployed, or restarted with a higher ratio) reads on from there. A lone undecodable record
among decodable ones is dead-lettered. A version the processor's scheme cannot produce
(:mod:`meterline.schemas.versions`) is dead-lettered as ``impossible_version``.

Operations: counters in :class:`SinkMetrics` (per batch, never per message), consumer lag
per assigned partition every ``lag_interval_s`` (position vs high watermark), and
``last_loop`` / ``insert_error`` for the liveness and readiness checks
(``meterline.ops.health.sink_checks``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from meterline.schemas import Topics
from meterline.sinks.backpressure import Backpressure, Partition
from meterline.sinks.batch import Batch, Hold, Polled, assemble, find_holds
from meterline.sinks.clickhouse.writer import ClickHouseWriter
from meterline.sinks.decode import decode_message, decoders_for, where_of
from meterline.sinks.errors import SinkWriteError
from meterline.sinks.isolate import MAX_REJECTED, RejectionWindow
from meterline.sinks.metrics import SinkMetrics
from meterline.sinks.stats import SinkStats
from meterline.sinks.write import BatchWriter

log = logging.getLogger(__name__)


class ClickHouseSink:
    def __init__(
        self,
        bootstrap_servers: str,
        topics: Topics,
        writer: ClickHouseWriter,
        *,
        group_id: str = "meterline-sink",
        batch_size: int = 20_000,
        batch_timeout_s: float = 0.5,
        consumer_config: dict[str, Any] | None = None,
        retry_backoff_s: tuple[float, float] = (0.2, 10.0),
        metrics: SinkMetrics | None = None,
        lag_interval_s: float = 5.0,
        max_rejected: int = MAX_REJECTED,
        reject_max_ratio: float | None = 0.5,
        undecodable_max_ratio: float | None = 0.5,
        pause_after_s: float = 1.0,
    ) -> None:
        self.topics = topics
        self.batch_size = batch_size
        self.batch_timeout_s = batch_timeout_s
        self.retry_backoff_s = retry_backoff_s
        self.stats = SinkStats()
        self.metrics = metrics or SinkMetrics()
        self.group_id = group_id
        self.lag_interval_s = lag_interval_s
        self.undecodable = RejectionWindow(undecodable_max_ratio)
        self.batch_writer = BatchWriter(
            writer, self.stats, self.metrics, RejectionWindow(reject_max_ratio), max_rejected
        )
        self.pause_after_s = pause_after_s
        self._writer_thread = ThreadPoolExecutor(1, thread_name_prefix="meterline-sink-insert")
        self._next_lag_at = 0.0
        #: messages asked per poll: ``batch_size`` records at the last batch's records per
        #: message (framed messages carry hundreds); starts low, so a first poll of framed
        #: messages cannot hold ``batch_size`` times too many records
        self._poll_messages = max(1, batch_size // 100)
        self.last_loop = time.monotonic()  # liveness: the loop came round recently
        self.insert_error: str | None = None  # readiness: the last insert failed
        self._decoders = decoders_for(topics)  # per topic: record bytes -> table, row
        conf = {
            "bootstrap.servers": bootstrap_servers,
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "log.connection.close": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
            **(consumer_config or {}),
        }
        self._consumer = Consumer(conf)
        self.backpressure = Backpressure(self._consumer)
        #: the group member id of the last assignment (read in the sink's thread)
        self.member_id: str | None = None
        self._consumer.subscribe(
            list(topics.sink_inputs), on_assign=self._on_assign, on_revoke=self._on_revoke
        )

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.stats.assignments += 1
        self.member_id = _consumer.memberid()
        log.info("sink: assigned %d partitions", len(partitions))

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.stats.revocations += 1
        self.backpressure.revoked(partitions)
        self.metrics.held_partitions.set(len(self.backpressure.held))

    @property
    def held(self) -> str | None:
        """Readiness: the partitions held on records this sink cannot decode, or None."""
        held = self.backpressure.held
        if not held:
            return None
        parts = ", ".join(f"{t}[{p}]@{h.offset}" for (t, p), h in sorted(held.items()))
        first = next(iter(held.values())).reason
        return f"holding {parts} on records this sink cannot decode ({first})"

    def run(self, stop: threading.Event) -> None:
        """Poll, write and commit until ``stop`` is set; then close (committing nothing new)."""
        try:
            while not stop.is_set():
                self.poll_once(stop)
                self._maybe_update_lag()
        finally:
            self.close()

    def poll_once(self, stop: threading.Event | None = None) -> int:
        """Process one batch. Returns the number of messages consumed."""
        self.last_loop = time.monotonic()
        messages = self._consumer.consume(self._poll_messages, self.batch_timeout_s)
        if not messages:
            return 0
        self.metrics.messages_in.inc(len(messages))
        self.metrics.batch_size.observe(len(messages))
        decoded: list[Polled] = []
        records = 0
        for msg in messages:
            if msg.error() is not None:
                log.warning("sink: consumer error: %s", msg.error())
                continue
            where = where_of(msg)
            if where[:2] in self.backpressure.held:
                continue  # fetched before the hold: read again from the hold's offset
            value = msg.value() or b""
            items = decode_message(self._decoders, msg, where, value)
            records += len(items)
            decoded.append((where, value, items))
        per_batch = self.batch_size * len(messages) // max(records, 1)
        self._poll_messages = max(1, min(self.batch_size, per_batch))
        batch, offsets = self._assemble(decoded, find_holds(decoded, records, self.undecodable))
        if not self._write_with_retry(batch, stop):
            return len(messages)  # stopping without commit: the batch is replayed later
        self._commit(offsets)
        self.stats.batches += 1
        self.metrics.batches.inc()
        return len(messages)

    def _assemble(
        self, decoded: list[Polled], holds: dict[Partition, Hold]
    ) -> tuple[Batch, dict[Partition, int]]:
        """:func:`~meterline.sinks.batch.assemble`, counted; each held partition is held
        (paused at its offset) and, when newly held, logged."""
        batch, offsets, dead_lettered, held = assemble(decoded, holds)
        for error_type in dead_lettered:
            self.stats.undecodable += 1
            self.metrics.dead_letter(error_type)
        for (topic, partition), (offset, reason) in holds.items():
            self.stats.held += held[(topic, partition)]
            self.metrics.held_records.inc(held[(topic, partition)])
            if (topic, partition) not in self.backpressure.held:
                log.error(
                    "sink: holding %s[%s] at offset %s, not dead-lettering: %s. A sink that "
                    "can decode these records reads on from there.",
                    topic, partition, offset, reason,
                )  # fmt: skip
            self.backpressure.hold(topic, partition, offset, reason)
        self.metrics.held_partitions.set(len(self.backpressure.held))
        return batch, offsets

    def _write_with_retry(self, batch: Batch, stop: threading.Event | None) -> bool:
        """Insert every table's rows, retrying with the same dedup tokens until written
        (True) or ``stop`` is set (False: nothing committed, the batch is replayed)."""
        delay, max_delay = self.retry_backoff_s
        try:
            while True:
                try:
                    self._polling_while(lambda: self.batch_writer.write(batch))
                    self.insert_error = None
                    return True
                except SinkWriteError as exc:
                    self.stats.write_failures += 1
                    self.metrics.write_failures.inc()
                    self.insert_error = str(exc)
                    self.last_loop = time.monotonic()
                    log.error("sink: %s; retrying in %.1fs", exc, delay)
                    if self.backpressure.wait(delay, stop):
                        return False  # stopping: the batch is replayed by the next owner
                    delay = min(delay * 2, max_delay)
        finally:
            self.backpressure.resume()

    def _polling_while(self, write: Callable[[], None]) -> None:
        """Run ``write`` on the writer thread; past ``pause_after_s`` pause the partitions
        and poll until it returns (it is never abandoned: its result decides the commit)."""
        future = self._writer_thread.submit(write)
        try:
            future.result(timeout=self.pause_after_s)
            return
        except FutureTimeout:
            pass
        self.backpressure.pause()
        while not future.done():
            self.last_loop = time.monotonic()
            self.backpressure.poll(self.backpressure.poll_s)
        future.result()

    def _commit(self, offsets: dict[tuple[str, int], int]) -> None:
        if not offsets:
            return
        tps = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        try:
            self._consumer.commit(offsets=tps, asynchronous=False)
        except KafkaException as exc:  # e.g. partitions revoked: the next owner replays
            self.metrics.commit_failures.inc()
            log.warning("sink: commit failed (%s); batch will be replayed", exc)

    def _maybe_update_lag(self) -> None:
        now = time.monotonic()
        if now < self._next_lag_at:
            return
        self._next_lag_at = now + self.lag_interval_s
        try:
            self.metrics.set_lag(self.group_id, self.lag())
        except KafkaException as exc:  # broker unreachable: keep the last values
            log.warning("sink: consumer lag not updated: %s", exc)

    def lag(self, timeout_s: float = 2.0, *, cached: bool = True) -> list[tuple[str, int, int]]:
        """``(topic, partition, lag)`` for this consumer's assigned partitions: high watermark
        minus the next offset to consume (the committed offset before the first message).

        ``cached``: the high watermarks the last fetch responses carried (no broker round
        trip; a partition not fetched yet is left out). The sink loop uses these: one
        ListOffsets request per partition, each up to ``timeout_s``, stalled the loop for
        seconds on every update (measured on Tansu: 8 s pauses at 16 partitions)."""
        assigned = self._consumer.assignment()
        if not assigned:
            return []
        positions = self._consumer.position(assigned)
        unread = [tp for tp in positions if tp.offset < 0]
        committed = {
            (tp.topic, tp.partition): tp.offset
            for tp in (self._consumer.committed(unread, timeout=timeout_s) if unread else [])
        }
        out = []
        for tp in positions:
            low, high = self._consumer.get_watermark_offsets(tp, timeout=timeout_s, cached=cached)
            if high < 0:  # cached: nothing fetched from this partition yet
                continue
            at = tp.offset if tp.offset >= 0 else committed.get((tp.topic, tp.partition), -1)
            out.append((tp.topic, tp.partition, max(0, high - (at if at >= 0 else low))))
        return out

    def close(self) -> None:
        self._writer_thread.shutdown(wait=True)
        self._consumer.close()

"""The sink: a batch consumer from Kafka into ClickHouse, committing after each insert.

    poll a batch -> decode per topic -> insert per table -> commit offsets -> next batch

A message marked as an NDJSON batch (:mod:`schemas.framing`; the processor frames its
enriched events and trajectory states) is split into its records, each decoded on its own:
an undecodable record becomes a dead letter with its own bytes and its index in the message
(``item``), and the others are written. A batch holds about ``batch_size`` records: the
number of messages asked of the consumer follows the records per message of the last batch.

Offsets are committed only after every insert of the batch returned, so a crash replays
the batch (at-least-once); ReplacingMergeTree keyed by id absorbs the replay. Each insert
carries a deduplication token derived from its messages, so ClickHouse drops a repeat of the
identical insert (a retry after an ambiguous failure) before any merge. A failed
insert is retried with backoff while the batch is held (no new polls): the sink applies
backpressure instead of buffering without bound. An insert refused for its data (a value a
column or view cannot hold) is split until the refused rows are found (:mod:`sinks.isolate`);
those go to ``dead_letters`` (``rejected_by_clickhouse``, stage ``sink``, the original
message) and the rest of the batch is written, so one bad row cannot stall every tenant.

Operations: counters in :class:`SinkMetrics` (per batch, never per message), consumer lag
per assigned partition every ``lag_interval_s`` (position vs high watermark), and
``last_loop`` / ``insert_error`` for the liveness and readiness checks
(``stream_processors.health.sink_checks``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from schemas import (
    DeadLetter,
    InvalidRecord,
    Outcome,
    OutcomeCorrection,
    Topics,
    decode_as,
    framing,
)
from sinks.clickhouse.rows import (
    correction_row,
    dead_letter_row,
    enriched_row,
    outcome_row,
    state_row,
)
from sinks.clickhouse.writer import ClickHouseWriter, InsertTokens
from sinks.errors import SinkWriteError
from sinks.isolate import MAX_REJECTED, RejectionWindow, insert_isolating
from sinks.metrics import SinkMetrics

log = logging.getLogger(__name__)

#: Insert order within a batch: dead letters last, so rows refused by the other tables join
#: them in the same batch, before the commit.
TABLE_ORDER = ("events", "trajectories", "outcomes", "outcome_corrections", "dead_letters")
#: Characters of ClickHouse's refusal (or of an unexpected error) kept in a dead letter's
#: reason.
_REASON_CHARS = 1_000
#: ``error_type`` of a message whose decoding raised something other than InvalidRecord (a
#: bug): dead-lettered, so replaying it cannot crash-loop the sink (as in the processor's
#: ``steps/validate.py``).
UNEXPECTED_ERROR = "unexpected_error"
#: ``error_type`` of a message whose row ClickHouse refused (:mod:`sinks.isolate`).
REJECTED = "rejected_by_clickhouse"

#: Where a message came from: (topic, partition, offset).
Where = tuple[str, int, int]


def _where(msg: Message) -> Where:
    return str(msg.topic()), int(msg.partition() or 0), int(msg.offset() or 0)


class Source(NamedTuple):
    """Where a row came from: the message, the record's index in it (0 unless the message is
    an NDJSON batch) and the record's bytes."""

    msg: Message
    where: Where
    item: int
    payload: bytes


@dataclass
class SinkStats:
    batches: int = 0
    rows: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(TABLE_ORDER, 0)
    )
    write_failures: int = 0
    undecodable: int = 0
    rejected: int = 0


@dataclass
class _Batch:
    """One consumed batch on its way into ClickHouse: rows per table, where each row came from
    (for a dead letter, should ClickHouse refuse the row) and the insert tokens."""

    rows: dict[str, list[tuple[Any, ...]]] = field(
        default_factory=lambda: {table: [] for table in TABLE_ORDER}
    )
    sources: dict[str, list[Source]] = field(
        default_factory=lambda: {table: [] for table in TABLE_ORDER}
    )
    tokens: InsertTokens = field(default_factory=InsertTokens)

    def add(self, table: str, row: tuple[Any, ...], source: Source) -> None:
        """A row and its source; the source's bytes go into ``table``'s insert token."""
        self.rows[table].append(row)
        self.sources[table].append(source)
        self.tokens.add(table, *source.where, source.payload)


def _dead_letter(source: Source, reason: str, error_type: str) -> tuple[Any, ...]:
    """The dead-letter row of a record the sink could not decode or ClickHouse refused."""
    topic, partition, offset = source.where
    letter = DeadLetter(
        source_topic=topic,
        partition=partition,
        offset=offset,
        item=source.item,
        key=source.msg.key(),
        payload=source.payload,
        reason=reason,
        error_type=error_type,
        stage="sink",
    )
    return dead_letter_row(letter)


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
    ) -> None:
        self.topics = topics
        self.writer = writer
        self.batch_size = batch_size
        self.batch_timeout_s = batch_timeout_s
        self.retry_backoff_s = retry_backoff_s
        self.stats = SinkStats()
        self.metrics = metrics or SinkMetrics()
        self.group_id = group_id
        self.lag_interval_s = lag_interval_s
        self.max_rejected = max_rejected
        self.rejections = RejectionWindow(reject_max_ratio)
        self._next_lag_at = 0.0
        #: messages asked per poll: ``batch_size`` records at the last batch's records per
        #: message (framed messages carry hundreds); starts low, so a first poll of framed
        #: messages cannot hold ``batch_size`` times too many records
        self._poll_messages = max(1, batch_size // 100)
        self.last_loop = time.monotonic()  # liveness: the loop came round recently
        self.insert_error: str | None = None  # readiness: the last insert failed
        self._decoders: dict[str, Callable[[bytes], tuple[str, tuple[Any, ...]]]] = {
            topics.enriched: lambda v: ("events", enriched_row(v)),
            topics.trajectory_state: lambda v: ("trajectories", state_row(v)),
            topics.dead_letters: lambda v: (
                "dead_letters",
                dead_letter_row(decode_as(DeadLetter, v)),
            ),
            topics.outcomes: lambda v: ("outcomes", outcome_row(decode_as(Outcome, v))),
            topics.outcome_corrections: lambda v: (
                "outcome_corrections",
                correction_row(decode_as(OutcomeCorrection, v)),
            ),
        }
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
        self._consumer.subscribe(list(topics.sink_inputs))

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
        batch = _Batch()
        offsets: dict[tuple[str, int], int] = {}
        records = 0
        for msg in messages:
            if msg.error() is not None:
                log.warning("sink: consumer error: %s", msg.error())
                continue
            where = topic, partition, offset = _where(msg)
            value = msg.value() or b""
            if framing.is_batch(msg.headers()):
                records += self._add_framed(batch, msg, where, value)
            else:
                source = Source(msg, where, 0, value)
                batch.add(*self._decode(source), source)
                records += 1
            offsets[(topic, partition)] = offset + 1
        per_batch = self.batch_size * len(messages) // max(records, 1)
        self._poll_messages = max(1, min(self.batch_size, per_batch))
        if not self._write_with_retry(batch, stop):
            return len(messages)  # stopping without commit: the batch is replayed later
        self._commit(offsets)
        self.stats.batches += 1
        self.metrics.batches.inc()
        return len(messages)

    def _add_framed(self, batch: _Batch, msg: Message, where: Where, value: bytes) -> int:
        """The rows of a batch message's records; returns how many records it carried. The
        message's bytes go once into the insert token of each table its records went to (an
        empty batch is one empty record: dead-lettered, not skipped)."""
        lines = framing.split(value) or [value]
        tables: set[str] = set()
        for item, line in enumerate(lines):
            source = Source(msg, where, item, line)
            table, row = self._decode(source)
            batch.rows[table].append(row)
            batch.sources[table].append(source)
            tables.add(table)
        for table in tables:
            batch.tokens.add(table, *where, value)
        return len(lines)

    def _decode(self, source: Source) -> tuple[str, tuple[Any, ...]]:
        """A row for the record's table; an undecodable record becomes a dead-letter row."""
        try:
            return self._decoders[source.where[0]](source.payload)
        except InvalidRecord as exc:
            self.stats.undecodable += 1
            self.metrics.dead_letter(exc.error_type)
            return "dead_letters", _dead_letter(source, exc.reason, exc.error_type)
        except Exception as exc:  # a bug in decoding or row mapping: this record pays for it
            log.exception("sink: unexpected error decoding %s[%s]@%s", *source.where)
            self.stats.undecodable += 1
            self.metrics.dead_letter(UNEXPECTED_ERROR)
            reason = f"unexpected {type(exc).__name__} while decoding: {exc}"[:_REASON_CHARS]
            return "dead_letters", _dead_letter(source, reason, UNEXPECTED_ERROR)

    def _write_with_retry(self, batch: _Batch, stop: threading.Event | None) -> bool:
        """Insert every table's rows, retrying with the same dedup tokens until written
        (True) or ``stop`` is set (False: nothing committed, the batch is replayed)."""
        delay, max_delay = self.retry_backoff_s
        while True:
            try:
                for table in TABLE_ORDER:
                    self._write_table(batch, table)
                self.insert_error = None
                return True
            except SinkWriteError as exc:
                self.stats.write_failures += 1
                self.metrics.write_failures.inc()
                self.insert_error = str(exc)
                self.last_loop = time.monotonic()
                log.error("sink: %s; retrying in %.1fs", exc, delay)
                if (stop or threading.Event()).wait(delay):
                    return False  # stopping: the batch is replayed by the next owner
                delay = min(delay * 2, max_delay)

    def _write_table(self, batch: _Batch, table: str) -> None:
        """Write ``table``'s rows of the batch; rows ClickHouse refuses become dead letters
        (inserted with the batch's other dead letters, hence ``TABLE_ORDER``)."""
        rounds = 0
        while batch.rows[table]:
            rows, sources = batch.rows[table], batch.sources[table]
            started = time.perf_counter()
            rejected = insert_isolating(
                lambda part, token: self.writer.insert(table, part, dedup_token=token),
                rows,
                batch.tokens.token(table),
                max_rejected=self.max_rejected,
            )
            self.metrics.insert_seconds[table].observe(time.perf_counter() - started)
            if rejected and table == "dead_letters" and rounds:
                # held and retried: the rows written meanwhile are dropped by their tokens
                raise SinkWriteError(
                    f"ClickHouse refused the dead letter of a refused row: {rejected[0][1]}"
                )
            if rejected:  # held and retried, as above, when refusals look systemic
                self.rejections.check(table, len(rows), len(rejected), rejected[-1][1])
            self.rejections.record(len(rows), len(rejected))
            written = len(rows) - len(rejected)
            self.metrics.rows[table].inc(written)
            self.stats.rows[table] += written
            batch.rows[table], batch.sources[table] = [], []  # written: not re-inserted on retry
            for index, reason in rejected:
                source = sources[index]
                log.error(
                    "sink: ClickHouse refused the row of %s/%s/%s item %s for %s; "
                    "dead-lettered: %s", *source.where, source.item, table, reason,
                )  # fmt: skip
                self.stats.rejected += 1
                self.metrics.dead_letter(REJECTED)
                why = f"ClickHouse refused the row for {table}: {reason}"[:_REASON_CHARS]
                batch.add("dead_letters", _dead_letter(source, why, REJECTED), source)
            rounds += 1

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
        self._consumer.close()

"""Batch step: the decoded messages of one poll -> the batch to write and the offsets to
commit after it.

Records the sink cannot decode because they come from a newer processor (:data:`SKEW`: a
newer ``schema_version``), or a storm of undecodable records (more than the window's ratio of
the last ~1,000), are held, not dead-lettered: :func:`find_holds` names, per partition, the
first message to hold and why; :func:`assemble` leaves that message and the partition's later
ones out, and commits the partition up to it. A lone undecodable record among decodable ones
is dead-lettered (its dead-letter row is in the batch). Pure apart from the window's count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from meterline.sinks.backpressure import Partition
from meterline.sinks.clickhouse.writer import InsertTokens
from meterline.sinks.decode import Decoded, Source, Where
from meterline.sinks.isolate import RejectionWindow

#: Insert order within a batch: dead letters last, so rows refused by the other tables join
#: them in the same batch, before the commit.
TABLE_ORDER = ("events", "trajectories", "outcomes", "outcome_corrections", "dead_letters")
#: ``error_type`` of records written by a newer processor than this sink: held, never
#: dead-lettered (a processor/sink version skew).
SKEW = frozenset({"unsupported_schema_version"})

#: One polled message decoded: where it came from, its bytes, its records.
Polled = tuple[Where, bytes, list[Decoded]]
#: A partition's hold: the offset of the first message held, and why.
Hold = tuple[int, str]


@dataclass
class Batch:
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


class Assembled(NamedTuple):
    """:func:`assemble`'s result: the batch, the offsets to commit after it, the
    ``error_type`` of each undecodable record in it (dead-lettered) and the records held per
    held partition."""

    batch: Batch
    offsets: dict[Partition, int]
    dead_lettered: list[str]
    held: dict[Partition, int]


def find_holds(
    decoded: list[Polled], records: int, undecodable: RejectionWindow
) -> dict[Partition, Hold]:
    """Per partition, the first message to hold and why: one with a record of a newer
    processor (:data:`SKEW`), or with any undecodable record during a storm (``undecodable``
    over its ratio, counting this poll's ``records``)."""
    bad = [(where, d) for where, _, items in decoded for d in items if d.error_type]
    storm = bool(bad) and undecodable.exceeded(records, len(bad))
    undecodable.record(records, len(bad))
    holds: dict[Partition, Hold] = {}
    for (topic, partition, offset), d in bad:
        if (storm or d.error_type in SKEW) and (topic, partition) not in holds:
            reason = d.row[7]  # the dead-letter row's reason (COLUMNS["dead_letters"])
            if storm:
                reason = (
                    f"more than {undecodable.max_ratio:.0%} of the last "
                    f"{undecodable.window:,} records undecodable (raise "
                    f"METERLINE_SINK_UNDECODABLE_MAX_RATIO, or 0, to dead-letter them); "
                    f"{d.error_type}: {reason}"
                )
            holds[(topic, partition)] = (offset, reason)
    return holds


def assemble(decoded: list[Polled], holds: dict[Partition, Hold]) -> Assembled:
    """The batch to write and the offsets to commit after it: a held partition's
    messages from the held one on are left out and its offset stays at that message.
    A message's bytes go once into the insert token of each table its records went to
    (an empty batch message is one empty record: dead-lettered, not skipped)."""
    batch = Batch()
    offsets: dict[Partition, int] = {}
    dead_lettered: list[str] = []
    for where, value, items in decoded:
        topic, partition, offset = where
        hold = holds.get((topic, partition))
        if hold is not None and offset >= hold[0]:
            continue
        tables: set[str] = set()
        for d in items:
            batch.rows[d.table].append(d.row)
            batch.sources[d.table].append(d.source)
            tables.add(d.table)
            if d.error_type is not None:
                dead_lettered.append(d.error_type)
        for table in tables:
            batch.tokens.add(table, *where, value)
        offsets[(topic, partition)] = offset + 1
    held: dict[Partition, int] = {}
    for (topic, partition), (offset, _reason) in holds.items():
        held[(topic, partition)] = sum(
            len(items) for w, _value, items in decoded
            if w[:2] == (topic, partition) and w[2] >= offset
        )  # fmt: skip
        offsets[(topic, partition)] = offset
    return Assembled(batch, offsets, dead_lettered, held)

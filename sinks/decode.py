"""Decode step: a consumed message -> one row per record, for the table the record goes to.

A message marked as an NDJSON batch (:mod:`meterline.schemas.framing`; the processor frames its
enriched events and trajectory states) is split into its records, each decoded on its own. A
record that cannot be decoded becomes a dead-letter row (stage ``sink``, its own bytes, its
index in the message as ``item``) marked with its ``error_type``; whether it is written or
held is the batch's decision (:mod:`meterline.sinks.batch`). Never raises for a record: an
unexpected error in decoding or row mapping (a bug) dead-letters that record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NamedTuple

from confluent_kafka import Message

from meterline.schemas import (
    DeadLetter,
    InvalidRecord,
    OutcomeCorrection,
    Topics,
    decode_as,
    framing,
)
from meterline.schemas.errors import UNEXPECTED_ERROR
from meterline.sinks.clickhouse.rows import (
    correction_row,
    dead_letter_row,
    enriched_row,
    sink_outcome_row,
    state_row,
)

__all__ = [
    "REASON_CHARS",
    "UNEXPECTED_ERROR",
    "Decoded",
    "Decoder",
    "Source",
    "Where",
    "dead_letter",
    "decode",
    "decode_message",
    "decoders_for",
    "where_of",
]

log = logging.getLogger(__name__)

#: Characters of ClickHouse's refusal (or of an unexpected error) kept in a dead letter's
#: reason.
REASON_CHARS = 1_000

#: Where a message came from: (topic, partition, offset).
Where = tuple[str, int, int]
#: A record's bytes -> its table and row; raises InvalidRecord for a record it cannot decode.
Decoder = Callable[[bytes], tuple[str, tuple[Any, ...]]]


def where_of(msg: Message) -> Where:
    return str(msg.topic()), int(msg.partition() or 0), int(msg.offset() or 0)


class Source(NamedTuple):
    """Where a row came from: the message, the record's index in it (0 unless the message is
    an NDJSON batch) and the record's bytes."""

    msg: Message
    where: Where
    item: int
    payload: bytes


class Decoded(NamedTuple):
    """A record decoded: its table and row, and for a dead-letter row of a record the sink
    could not decode, the ``error_type`` (None otherwise)."""

    source: Source
    table: str
    row: tuple[Any, ...]
    error_type: str | None


def decoders_for(topics: Topics) -> dict[str, Decoder]:
    """The decoder of each topic the sink reads."""
    return {
        topics.enriched: lambda v: ("events", enriched_row(v)),
        topics.trajectory_state: lambda v: ("trajectories", state_row(v)),
        topics.dead_letters: lambda v: (
            "dead_letters",
            dead_letter_row(decode_as(DeadLetter, v)),
        ),
        topics.outcomes: lambda v: ("outcomes", sink_outcome_row(v)),
        topics.outcome_corrections: lambda v: (
            "outcome_corrections",
            correction_row(decode_as(OutcomeCorrection, v)),
        ),
    }


def decode_message(
    decoders: dict[str, Decoder], msg: Message, where: Where, value: bytes
) -> list[Decoded]:
    """Each record of the message (``value``: its bytes), decoded on its own."""
    framed = framing.is_batch(msg.headers())
    lines = (framing.split(value) or [value]) if framed else [value]
    return [decode(decoders, Source(msg, where, i, line)) for i, line in enumerate(lines)]


def decode(decoders: dict[str, Decoder], source: Source) -> Decoded:
    """The record's row; an undecodable record becomes a dead-letter row, marked with
    its ``error_type`` (counted when it is written: it may be held instead)."""
    try:
        table, row = decoders[source.where[0]](source.payload)
        return Decoded(source, table, row, None)
    except InvalidRecord as exc:
        row = dead_letter(source, exc.reason, exc.error_type)
        return Decoded(source, "dead_letters", row, exc.error_type)
    except Exception as exc:  # a bug in decoding or row mapping: this record pays for it
        log.exception("sink: unexpected error decoding %s[%s]@%s", *source.where)
        reason = f"unexpected {type(exc).__name__} while decoding: {exc}"[:REASON_CHARS]
        row = dead_letter(source, reason, UNEXPECTED_ERROR)
        return Decoded(source, "dead_letters", row, UNEXPECTED_ERROR)


def dead_letter(source: Source, reason: str, error_type: str) -> tuple[Any, ...]:
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

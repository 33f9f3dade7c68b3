"""Recompute the cost of llm_calls for a period with the current price book.

Contract: each ``llm_call`` of ``[start, end)`` in ``events FINAL`` is priced by the same
:class:`~meterline.stream_processors.pricing.PriceBook` the stream runs (same token split, same
lookup, same event-time rule), so stream pricing and re-pricing with the same book give
the same numbers. A row whose price changed is written again, whole, with the same
``version`` and ``processed_at`` = the time of the re-pricing: ``FINAL`` keeps the last
inserted row of a version and ``event_latest`` (the billing views) the highest
``(version, processed_at)``, so every view picks the repriced row, while a later stream
copy (a join's version 2, priced with the then current book) still wins. Rows already
priced as the book prices them are not written: re-pricing twice writes nothing the
second time. One UTC day at a time to bound memory.

Not re-priced: a stream copy of an event replayed from Kafka *after* a re-pricing lands
with the old price and the same version; ``FINAL`` then keeps it (``event_latest`` does
not). Re-price again after such a replay.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from meterline.billing.watermark import Watermark
from meterline.schemas import ControlPlane, utc_now
from meterline.sinks.clickhouse.identifiers import check_identifier
from meterline.sinks.clickhouse.rows import COLUMNS
from meterline.sinks.clickhouse.writer import ClickHouseWriter
from meterline.stream_processors.pricing import PriceBook

_COLUMNS = COLUMNS["events"]
_PRICING = ("computed_cost_usd", "billed_cost_usd", "cost_source", "price_status", "price_book")


@dataclass(frozen=True)
class RepriceResult:
    calls: int  # llm_calls read
    repriced: int  # rows written (their price changed)
    unpriced: int  # of the calls read: still unpriced or with invalid tokens
    price_book: str


class _Call:
    """An events row as the book reads an llm_call."""

    __slots__ = ("cached_tokens", "cost_usd", "input_tokens", "model", "output_tokens",
                 "project", "properties", "provider", "timestamp")  # fmt: skip

    def __init__(self, row: dict[str, Any]) -> None:
        self.project, self.model = row["project"], row["model"] or None
        self.provider = row["provider"] or None
        self.input_tokens, self.output_tokens = row["input_tokens"], row["output_tokens"]
        self.cached_tokens, self.cost_usd = row["cached_tokens"], row["cost_usd"]
        props = orjson.loads(row["properties"] or "{}")
        self.properties = props if isinstance(props, dict) else {}
        ts: datetime = row["timestamp"]
        self.timestamp = ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def reprice(
    writer: ClickHouseWriter, config: ControlPlane | None, start: date, end: date,
    project: str | None = None,
) -> RepriceResult:  # fmt: skip
    """Re-price the llm_calls of the UTC days ``start`` .. ``end`` (inclusive)."""
    book = PriceBook(config)
    calls = written = unpriced = 0
    day = start
    while day <= end:
        since = datetime(day.year, day.month, day.day, tzinfo=UTC)
        rows = _llm_calls(writer, since, since + timedelta(days=1), project)
        stamp = utc_now()
        out = []
        for row in rows:
            priced = book.price(_Call(row))
            calls += 1
            unpriced += priced.status != "priced"
            new = (priced.computed, priced.billed, priced.source, priced.status, priced.book)
            if tuple(row[c] for c in _PRICING) != new:
                out.append(tuple(
                    new[_PRICING.index(c)] if c in _PRICING
                    else stamp if c == "processed_at" else row[c]
                    for c in _COLUMNS
                ))  # fmt: skip
        writer.insert("events", out)
        written += len(out)
        day += timedelta(days=1)
    return RepriceResult(calls, written, unpriced, book.version)


def reprice_landed(
    writer: ClickHouseWriter, config: ControlPlane | None, start: date, end: date,
    project: str | None, watermark: Watermark | None, wait_s: float,
) -> RepriceResult:  # fmt: skip
    """:func:`reprice` once every record given to the pipeline has landed (``watermark``
    None: no broker). Raises ``NotLanded`` before writing anything otherwise."""
    if watermark is not None:
        watermark.wait_landed(wait_s)
    return reprice(writer, config, start, end, project)


def _llm_calls(
    writer: ClickHouseWriter, since: datetime, until: datetime, project: str | None
) -> list[dict[str, Any]]:
    db = check_identifier(writer.database)
    where = "kind = 'llm_call' AND timestamp >= %(start)s AND timestamp < %(end)s"
    if project:
        where += " AND project = %(project)s"
    result = writer.client.query(
        f"SELECT {', '.join(_COLUMNS)} FROM {db}.events FINAL WHERE {where}",
        parameters={"start": since, "end": until, "project": project or ""},
    )
    return list(result.named_results())

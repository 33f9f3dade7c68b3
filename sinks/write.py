"""Write step: one batch into ClickHouse, table by table in :data:`TABLE_ORDER`.

Each table's rows go in one insert carrying the batch's deduplication token for that table,
so ClickHouse drops a repeat of the identical insert (a retry after an ambiguous failure). An
insert refused for its data (a value a column or view cannot hold) is split until the refused
rows are found (:mod:`meterline.sinks.isolate`); those become dead letters
(``rejected_by_clickhouse``, stage ``sink``, the original message) inserted with the batch's
other dead letters, and the rest is written. Refusals that look systemic (the window's ratio,
or a refused dead letter) raise :class:`SinkWriteError`: the caller holds the batch and
retries it whole; rows already written are cleared from the batch, and their tokens drop them
should they be inserted again.
"""

from __future__ import annotations

import logging
import time

from meterline.sinks.batch import TABLE_ORDER, Batch
from meterline.sinks.clickhouse.writer import ClickHouseWriter
from meterline.sinks.decode import REASON_CHARS, dead_letter
from meterline.sinks.errors import SinkWriteError
from meterline.sinks.isolate import RejectionWindow, insert_isolating
from meterline.sinks.metrics import SinkMetrics
from meterline.sinks.stats import SinkStats

log = logging.getLogger(__name__)

#: ``error_type`` of a message whose row ClickHouse refused (:mod:`meterline.sinks.isolate`).
REJECTED = "rejected_by_clickhouse"


class BatchWriter:
    """Writes batches through ``writer``; counts into ``stats`` and ``metrics``. Blocking
    (the sink runs it on its writer thread); raises :class:`SinkWriteError` for a failed
    insert, or for refusals over ``max_rejected`` per insert or over ``rejections``' ratio."""

    def __init__(
        self,
        writer: ClickHouseWriter,
        stats: SinkStats,
        metrics: SinkMetrics,
        rejections: RejectionWindow,
        max_rejected: int,
    ) -> None:
        self.writer = writer
        self.stats = stats
        self.metrics = metrics
        self.rejections = rejections
        self.max_rejected = max_rejected

    def write(self, batch: Batch) -> None:
        for table in TABLE_ORDER:
            self._write_table(batch, table)

    def _write_table(self, batch: Batch, table: str) -> None:
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
                why = f"ClickHouse refused the row for {table}: {reason}"[:REASON_CHARS]
                batch.add("dead_letters", dead_letter(source, why, REJECTED), source)
            rounds += 1

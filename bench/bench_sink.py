"""CPU per row of the sink's stages for enriched events, on chDB in this process.

Enriched events are built as the processor sends them (the event's JSON as received, its
trajectory's JSON, version, processed_at) from the demo traffic, then written in batches of
``--batch`` rows through the sink's own code: decode plus ``events`` row
(``meterline.sinks.clickhouse.rows.enriched_row``), the Arrow table
(``meterline.sinks.clickhouse.writer.
arrow_table``), and the insert (``insert_arrow`` into the ``events`` table with its view).
CPU is this thread's (``time.thread_time``) for each stage, and the whole process's for the
insert (chDB's own threads) and for the background work left when the inserts return
(merges), measured over a short settle. For comparison, the same number of rows as
(key, payload) strings into a plain MergeTree: bench_pipeline.py's baseline insert.
Prints, never asserts.

    python bench/bench_sink.py [--events 120000] [--batch 20000]

The first batch warms pyarrow and chDB up and is not counted.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from meterline.demo.traffic import generate
from meterline.ops.gc_tuning import tune_gc
from meterline.schemas import VERSION_JOINED, ActionEvent, TelemetryEvent, TrajectoryRecord, encode
from meterline.schemas.codec import encode_enriched, encode_timestamp
from meterline.schemas.common import utc_now
from meterline.sinks import connect
from meterline.sinks.clickhouse.rows import enriched_row
from meterline.sinks.clickhouse.writer import ClickHouseWriter, arrow_table

DATABASE = "benchsink"


def process_cpu() -> float:
    t = os.times()
    return t.user + t.system


def enriched_values(events: int) -> list[bytes]:
    """Every event of the demo traffic as the processor sends it, joined to its trajectory
    (as first recorded) when it has one."""
    records = generate(project="bench", events=events, duplicate_rate=0, early_rate=0).records
    trajectories = {
        r.trace_id: encode(r) for r in reversed(records) if isinstance(r, TrajectoryRecord)
    }
    processed_at = encode_timestamp(utc_now())
    return [
        encode_enriched(encode(r), trajectories.get(r.trace_id or ""), VERSION_JOINED, processed_at)
        for r in records
        if isinstance(r, ActionEvent | TelemetryEvent)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=120_000)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after the inserts")
    args = parser.parse_args()

    values = enriched_values(args.events)
    n = len(values)
    print(f"{n:,} enriched events, {sum(map(len, values)) / n:,.0f} bytes each on average")
    if n <= args.batch:
        raise SystemExit("--events must give more than one --batch (the first warms up)")
    tune_gc()  # the sink's GC settings
    with tempfile.TemporaryDirectory() as tmp:
        ch = connect(f"chdb://{Path(tmp) / 'ch'}")
        writer = ClickHouseWriter(ch, DATABASE)
        writer.ensure_schema()
        schema = writer._arrow_schema("events")
        assert schema is not None, "events is not inserted as Arrow"
        spent = {"decode + row": 0.0, "arrow table": 0.0, "insert (thread)": 0.0}
        insert_process = 0.0
        # the first batch warms pyarrow and chDB up (~4x the Arrow cost): not counted
        warm = arrow_table(schema, [enriched_row(v) for v in values[: args.batch]])
        ch.insert_arrow("events", warm, database=DATABASE)
        values = values[args.batch :]
        n = len(values)
        for start in range(0, n, args.batch):
            batch = values[start : start + args.batch]
            t0 = time.thread_time()
            rows = [enriched_row(v) for v in batch]
            t1 = time.thread_time()
            table = arrow_table(schema, rows)
            t2, p2 = time.thread_time(), process_cpu()
            ch.insert_arrow("events", table, database=DATABASE)
            t3, p3 = time.thread_time(), process_cpu()
            spent["decode + row"] += t1 - t0
            spent["arrow table"] += t2 - t1
            spent["insert (thread)"] += t3 - t2
            insert_process += p3 - p2
        p4 = process_cpu()
        time.sleep(args.settle)
        background = process_cpu() - p4

        ch.command(
            f"CREATE TABLE {DATABASE}.raw (key String, payload String) "
            "ENGINE = MergeTree ORDER BY key"
        )
        plain = [(str(i), v) for i, v in enumerate(values)]
        p5 = process_cpu()
        for start in range(0, n, args.batch):
            ch.insert(
                "raw", plain[start : start + args.batch], column_names=["key", "payload"],
                database=DATABASE,
            )  # fmt: skip
        baseline = process_cpu() - p5

    us = {name: s / n * 1e6 for name, s in spent.items()}
    for name, value in us.items():
        print(f"{name:28} {value:6.1f} µs/row")
    print(f"{'insert (process, chDB)':28} {insert_process / n * 1e6:6.1f} µs/row")
    print(f"{'background after inserts':28} {background / n * 1e6:6.1f} µs/row "
          f"(over {args.settle:.0f} s: merges)")  # fmt: skip
    total = us["decode + row"] + us["arrow table"] + insert_process / n * 1e6
    print(f"{'sink total (without bg)':28} {total:6.1f} µs/row")
    print(f"{'baseline (key, payload) rows':28} {baseline / n * 1e6:6.1f} µs/row (process)")


if __name__ == "__main__":
    main()

"""Throughput of the full embedded pipeline vs a pass-through baseline, in one run.

    python bench/bench_pipeline.py [--events 1000000]

Baseline: raw consume -> ClickHouse insert, no processing (what the hardware and clients
allow). Pipeline: producer -> Faust validate/dedupe/join -> sink -> ClickHouse, on generated
traffic with 2% duplicates and 5% of events sent before their trajectory. Prints events/s per
stage and end to end, and the ratio pipeline / baseline. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer

from meterline.demo.report import counts
from meterline.demo.run import scraped
from meterline.demo.traffic import generate
from meterline.embedded.broker import TansuBroker
from meterline.embedded.runtime import Pipeline
from meterline.ops.admin import ensure_topics
from meterline.ops.gc_tuning import tune_gc
from meterline.ops.progress import ProgressBar
from meterline.producers import MeterlineProducer
from meterline.schemas import RawRecord, Topics, encode, framing
from meterline.settings import Settings
from meterline.sinks import connect

PARTITIONS = 4


Encoded = list[tuple[str, bytes, bytes]]


def serialised(topics: Topics, records: list[RawRecord]) -> Encoded:
    """(topic, key, value) of every record, serialised as agent processes do before sending:
    done before any clock starts (pydantic serialisation of 1,000,000 records takes ~8 s of
    one core, the agents' cost, not the pipeline's)."""
    return [(topics.for_record(r), r.routing_key.encode(), encode(r)) for r in records]


def produce(bootstrap: str, topics: Topics, encoded: Encoded) -> float:
    """Send through the SDK's producer (framed per-partition batches); returns seconds."""
    p = MeterlineProducer(bootstrap, topics=topics, redactor=None)  # synthetic, no secrets
    t0 = time.perf_counter()
    for topic, key, value in encoded:
        p.send_encoded(topic, key, value)
    left = p.close(120)
    if left or p.stats.failed:
        raise SystemExit(f"producer: {left} undelivered, {p.stats.failed} failed")
    return time.perf_counter() - t0


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (this one when ``pid`` is None), from /proc.
    CPU per event holds steady on a busy machine, where events/s does not."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(fields[:8]) - idle) / tick, sum(fields[:8]) / tick


def enriched_out(pipeline: Pipeline) -> int:
    """Enriched records the workers produced so far, from their metrics (the topic's offsets
    count messages, and the workers frame hundreds of records into one)."""
    return int(scraped(pipeline).get("meterline_processor_records_out_total[enriched]", 0))


def baseline(bootstrap: str, ch: Any, encoded: Encoded, pipeline_topics: Topics) -> float:
    """Raw consume -> ClickHouse insert of (key, payload) rows, one per record (batch
    messages unframed, nothing else), of the pipeline's records sent to topics of their
    own; returns records/s."""
    topics = Topics("benchbase")
    ensure_topics(bootstrap, topics.raw, PARTITIONS)
    rename = dict(zip(pipeline_topics.raw, topics.raw, strict=True))
    produce(bootstrap, topics, [(rename[t], k, v) for t, k, v in encoded])
    ch.command("CREATE DATABASE IF NOT EXISTS bench")
    ch.command(
        "CREATE TABLE IF NOT EXISTS bench.raw (key String, payload String) "
        "ENGINE = MergeTree ORDER BY key"
    )
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-baseline",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
        }
    )
    c.subscribe(list(topics.raw))
    n, t0 = 0, 0.0
    while n < len(encoded):
        msgs = c.consume(20_000, 1.0)
        rows = [
            (m.key(), value)
            for m in msgs
            if m.error() is None
            for value in (
                framing.split(m.value()) if framing.is_batch(m.headers()) else [m.value()]
            )
        ]
        if rows:
            t0 = t0 or time.perf_counter()  # from the first message: excludes the group join
            ch.insert("raw", rows, column_names=["key", "payload"], database="bench")
            c.commit(asynchronous=False)
            n += len(rows)
    elapsed = time.perf_counter() - t0
    c.close()
    return n / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--data-dir", help="keep processor logs and state here (default: a temp dir)")
    args = ap.parse_args()

    t = time.perf_counter()
    traffic = generate(project="bench", events=args.events, duplicate_rate=0.02, early_rate=0.05)
    print(
        f"generated {len(traffic.records):,} records ({len(traffic.unique_events):,} unique "
        f"events, {traffic.duplicates_sent:,} duplicates, {traffic.early_events:,} early) "
        f"in {time.perf_counter() - t:.1f}s"
    )
    topics = Settings(topic_prefix="bench").topics
    records = traffic.records
    t = time.perf_counter()
    encoded = serialised(topics, records)
    print(f"serialised them in {time.perf_counter() - t:.1f}s (not timed below)")
    # This process runs the sink thread, as `meterline up` does (same GC settings). The
    # generated traffic is the benchmark's, not the sink's: frozen, the sink's collections
    # never scan it (1.3 million records at 1,000,000 events).
    tune_gc()
    gc.freeze()
    n_events = traffic.events_sent
    with tempfile.TemporaryDirectory() as tmp, TansuBroker() as broker:
        ch = connect(f"chdb://{Path(tmp) / 'ch'}")
        base = baseline(broker.bootstrap, ch, encoded, topics)
        print(f"baseline  raw consume -> ClickHouse insert: {base:,.0f} events/s")

        settings = Settings(
            kafka_bootstrap=broker.bootstrap,
            data_dir=Path(args.data_dir or tmp) / "ml",
            topic_prefix="bench",
            partitions=PARTITIONS,
            database="benchdb",
        )
        with Pipeline(settings, workers=args.workers, clickhouse=ch) as pipeline:
            # the clock starts once the workers are in their group with their state, as the
            # baseline's starts after its group join: start-up is not throughput
            ready_s = pipeline.wait_ready()
            pids = [w.pid for w in pipeline.workers if w.pid]
            workers_cpu0 = sum(cpu_seconds(p) for p in pids)
            broker_pid = broker.pid
            assert broker_pid is not None
            broker_cpu0, here_cpu0 = cpu_seconds(broker_pid), cpu_seconds()
            busy0, all0 = machine_cpu()
            print(
                f"pipeline  {len(pids)} worker(s), pids {' '.join(map(str, pids))}, ready after "
                f"{ready_s:.1f}s (group join, recovery: not timed below)",
                flush=True,
            )
            sink_batches0 = pipeline.sink.stats.batches if pipeline.sink else 0
            t0 = time.perf_counter()
            produce_s = produce(broker.bootstrap, topics, encoded)
            print(f"producer  {len(records) / produce_s:,.0f} records/s ({produce_s:.1f}s)")
            want = len(traffic.unique_events)
            processed_at = None
            sink = pipeline.sink
            assert sink is not None
            bar = ProgressBar("enriched rows in ClickHouse", want)  # drawn on a terminal only
            # Watching must not load the machine it measures: a FINAL count of the events
            # table every 0.5 s took a large share of chDB's CPU. Poll the workers' output
            # counter and the sink's row counter; count exactly (FINAL) only once they meet.
            enriched = 0
            while True:
                pipeline.check()
                now = time.perf_counter() - t0
                inserted = sink.stats.rows["events"]
                bar.update(min(inserted, want))
                if processed_at is None or inserted >= enriched:
                    enriched = enriched_out(pipeline)
                    if processed_at is None and enriched >= want:
                        processed_at = now
                if enriched >= want and sink.stats.rows["events"] >= enriched:
                    got = counts(ch, settings.database, "bench")
                    if got.events >= want and got.joined >= want:
                        break
                if now > 1800:
                    print(f"timeout: {counts(ch, settings.database, 'bench')}")
                    break
                time.sleep(0.5)
            bar.close()
            total = time.perf_counter() - t0
            sink_batches = sink.stats.batches - sink_batches0
            steps = scraped(pipeline)
            workers_cpu = sum(cpu_seconds(p) for p in pids) - workers_cpu0
            broker_cpu = cpu_seconds(broker_pid) - broker_cpu0
            here_cpu = cpu_seconds() - here_cpu0
            busy1, all1 = machine_cpu()
        processed_at = processed_at or total
        proc = n_events / processed_at
        e2e = n_events / total
        print(f"processor {proc:,.0f} events/s (all enriched produced after {processed_at:.1f}s)")
        print(
            f"end to end {e2e:,.0f} events/s ({n_events:,} events in {total:.1f}s; "
            f"ClickHouse: {got.events:,} unique, {got.joined:,} joined)"
        )
        print(f"ratio end to end / baseline: {e2e / base:.2f}")
        parked = int(steps.get("meterline_processor_events_parked_total", 0))
        print(
            f"processor parked {parked:,} events ({parked / n_events:.1%}; 5% are sent early "
            "by construction, more wait when one raw topic is read ahead of another), "
            f"{int(steps.get('meterline_processor_late_joins_total', 0)):,} re-emitted joined"
        )
        print(
            f"sink      {sink_batches:,} batches, {got.events / max(sink_batches, 1):,.0f} "
            "events per batch on average (chDB's CPU per row falls with larger inserts)"
        )
        print(
            f"processor CPU {workers_cpu / n_events * 1e6:,.1f} µs/event "
            f"({workers_cpu:.1f} CPU-s in {len(pids)} worker(s); 1e6 / that = "
            f"{n_events / workers_cpu:,.0f} events/s per busy core)"
        )
        print(
            f"CPU-s during the run: workers {workers_cpu:.1f}, broker {broker_cpu:.1f}, this "
            f"process (producer, sink, chDB) {here_cpu:.1f}; machine busy "
            f"{(busy1 - busy0) / (all1 - all0):.0%} of {os.cpu_count()} cores"
        )


if __name__ == "__main__":
    main()

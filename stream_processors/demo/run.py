"""The demo: start the pipeline, send traffic, wait for ClickHouse, report, verify."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime

from prometheus_client.parser import text_string_to_metric_families

from producers import MeterlineProducer
from stream_processors.demo import report
from stream_processors.demo.traffic import Traffic, generate
from stream_processors.embedded.runtime import Pipeline
from stream_processors.progress import ProgressBar
from stream_processors.settings import Settings

SEND_CHUNK = 500


def wait_for(
    pipeline: Pipeline,
    traffic: Traffic,
    timeout_s: float,
    on_progress: Callable[[float], None] | None = None,
) -> report.Counts:
    """Poll ClickHouse until it holds every unique event joined, or ``timeout_s`` passes.
    ``on_progress(joined events so far)`` after each poll."""
    want_events, want_traj = len(traffic.unique_events), len(traffic.trajectories)
    deadline = time.monotonic() + timeout_s
    while True:
        pipeline.check()
        got = report.counts(pipeline.clickhouse, pipeline.settings.database, traffic.project)
        if on_progress is not None:
            on_progress(got.joined)
        done = (
            got.events == want_events
            and got.joined == want_events
            and got.trajectories == want_traj
        )
        if done or time.monotonic() > deadline:
            return got
        time.sleep(0.5)


def scraped(pipeline: Pipeline) -> dict[str, float]:
    """Counters summed over the pipeline's /metrics endpoints (its own and each worker's)."""
    urls = [u for u in (pipeline.metrics_url, *pipeline.worker_urls().values()) if u]
    totals: dict[str, float] = {}
    for url in urls:
        with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
            text = resp.read().decode()
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                key = s.name + "".join(f"[{v}]" for v in s.labels.values())
                totals[key] = totals.get(key, 0.0) + s.value
    return totals


def run_demo(settings: Settings, *, events: int = 5_000, timeout_s: float = 150.0) -> int:
    project = "demo-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    traffic = generate(project=project, events=events)
    t0 = time.monotonic()
    print(f"meterline demo: starting the embedded pipeline (data dir {settings.data_dir}) ...")
    with Pipeline(settings) as pipeline:
        print(
            f"  broker {pipeline.settings.kafka_bootstrap}, ClickHouse "
            f"{pipeline.settings.effective_clickhouse_url}"
        )
        if pipeline.metrics_url:
            print(
                f"  metrics {pipeline.metrics_url}/metrics (workers: "
                f"{pipeline.settings.effective_run_dir}/processor-*.json)"
            )
        assert pipeline.settings.kafka_bootstrap
        producer = MeterlineProducer(
            pipeline.settings.kafka_bootstrap, topics=pipeline.settings.topics
        )
        records = traffic.records
        with ProgressBar("sending", len(records)) as sent:
            for i in range(0, len(records), SEND_CHUNK):
                producer.send_many(records[i : i + SEND_CHUNK])
                sent.update(min(i + SEND_CHUNK, len(records)))
        left = producer.close()
        print(
            f"  sent {len(traffic.records)} records: {traffic.events_sent} events "
            f"({traffic.duplicates_sent} duplicates, {traffic.early_events} before their "
            f"trajectory) in {len(traffic.trajectories)} trajectories; "
            f"delivery failures {producer.stats.failed + left}"
        )
        with ProgressBar("joined in ClickHouse", len(traffic.unique_events)) as joined:
            got = wait_for(pipeline, traffic, timeout_s, joined.update)
        ch, db = pipeline.clickhouse, pipeline.settings.database
        kinds = report.by_kind(ch, db, project)
        usage = report.llm_usage_by_user(ch, db, project)
        metrics = scraped(pipeline) if pipeline.metrics_url else {}
    elapsed = time.monotonic() - t0
    print(f"\nReport for project {project} (read back from ClickHouse, {elapsed:.1f}s):\n")
    print(report.table(["kind", "events"], kinds))
    print()
    dropped = traffic.events_sent - got.events
    print(
        report.table(
            ["", "count"],
            [
                ("events sent", traffic.events_sent),
                ("unique events in ClickHouse", got.events),
                ("duplicates dropped", dropped),
                ("joined to trajectory", got.joined),
                ("unjoined", got.events - got.joined),
                ("trajectories", got.trajectories),
            ],
        )
    )
    print()
    print(report.table(["user", "llm calls", "input tokens", "output tokens", "cost usd"], usage))
    want = len(traffic.unique_events)
    ok = got.events == want and got.joined == want and got.trajectories == len(traffic.trajectories)
    if metrics:
        events_out = metrics.get("meterline_processor_events_out_total", 0)
        dropped_m = metrics.get("meterline_processor_duplicates_dropped_total", 0)
        rows = metrics.get("meterline_sink_rows_inserted_total[events]", 0)
        print(
            f"\nFrom /metrics: processor events out {events_out:.0f}, duplicates dropped "
            f"{dropped_m:.0f}, sink rows inserted into events {rows:.0f} (late joins included)."
        )
    verdict = "OK" if ok else "MISMATCH"
    print(
        f"\n{verdict}: ClickHouse holds {got.events} unique events ({got.joined} joined) and "
        f"{got.trajectories} trajectories; sent {want} unique events in "
        f"{len(traffic.trajectories)} trajectories."
    )
    return 0 if ok else 1

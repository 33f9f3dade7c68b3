"""The demo: start the pipeline, send traffic, wait for ClickHouse, report, verify."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from meterline.demo import report
from meterline.demo.traffic import Traffic, generate
from meterline.embedded.runtime import Pipeline
from meterline.ops.progress import ProgressBar
from meterline.ops.tables import table
from meterline.producers import MeterlineProducer
from meterline.settings import Settings

SEND_CHUNK = 500
#: the example control plane (docs/examples), used by the demo when none is configured
EXAMPLE_CONTROL_PLANE = Path(__file__).resolve().parents[2] / "docs/examples/control-plane.yaml"


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


def outcomes_drained(pipeline: Pipeline, timeout_s: float) -> bool:
    """Wait until the sink inserted every outcome record the workers produced (read from
    their metrics; with metrics off, give the sink a few seconds)."""
    if not pipeline.metrics_url:
        time.sleep(5)
        return True

    def drained() -> bool:
        m = scraped(pipeline)
        return m.get("meterline_sink_rows_inserted_total[outcomes]", 0) >= m.get(
            "meterline_processor_records_out_total[outcomes]", 0
        )

    deadline = time.monotonic() + timeout_s
    while not drained():
        pipeline.check()
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def trajectory_outcomes(pipeline: Pipeline, project: str, rules: list[str]) -> dict[str, float]:
    """Live outcomes of the trajectory-scope ``rules``: ``outcome_id -> value``."""
    db = pipeline.settings.database
    rows = pipeline.clickhouse.query(
        f"SELECT outcome_id, value FROM {db}.outcomes FINAL WHERE retracted = 0 "
        "AND project = %(p)s AND rule_id IN %(rules)s",
        parameters={"p": project, "rules": rules},
    ).result_rows
    return {str(oid): float(v) for oid, v in rows}


def rules_report(pipeline: Pipeline, traffic: Traffic, timeout_s: float) -> tuple[str, bool]:
    """Outcomes (derived in the stream), seats and cost per outcome for the demo project.
    A backfill of the traffic's days adds the user-scope outcomes and the seats, and must
    reproduce the stream's trajectory outcomes exactly."""
    from meterline.billing import report as billing
    from meterline.billing.backfill import backfill
    from meterline.stream_processors.control_plane import load_control_plane

    assert pipeline.settings.control_plane is not None and pipeline.writer is not None
    if not outcomes_drained(pipeline, timeout_s):
        return "outcomes: the sink did not catch up with the rule stage in time", False
    config = load_control_plane(pipeline.settings.control_plane)
    rules = [r.id for r in config.outcome_rules if r.scope == "trajectory"]
    streamed = trajectory_outcomes(pipeline, traffic.project, rules)
    days = sorted({e.timestamp.date() for e in traffic.unique_events.values()})
    result = backfill(pipeline.writer, config, days[0], days[-1], traffic.project)
    same = trajectory_outcomes(pipeline, traffic.project, rules) == streamed
    sections = billing.sections(
        pipeline.clickhouse, pipeline.settings.database, project=traffic.project,
        start=days[0], end=days[-1],
    )  # fmt: skip
    wanted = ("Outcomes", "Seats", "Cost per outcome")
    text = billing.render([s for s in sections if s.title.startswith(wanted)])
    verdict = "matches" if same else "DOES NOT MATCH"
    text += (
        f"\n{len(streamed)} trajectory outcomes derived in the stream; a backfill of the same "
        f"days with the same rules {verdict} them ({result.outcomes} outcomes incl. user-scope "
        f"rules, {result.seat_rows} seat rows).\n"
    )
    return text, same


def run_demo(settings: Settings, *, events: int = 5_000, timeout_s: float = 150.0) -> int:
    project = "demo-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    traffic = generate(project=project, events=events)
    t0 = time.monotonic()
    if settings.control_plane is None and EXAMPLE_CONTROL_PLANE.exists():
        settings = settings.with_overrides(control_plane=EXAMPLE_CONTROL_PLANE)
    rules_text: str | None = None
    rules_ok = True
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
        if pipeline.settings.control_plane is not None:
            print(f"  rules: control plane {pipeline.settings.control_plane}")
            rules_text, rules_ok = rules_report(pipeline, traffic, timeout_s)
        kinds = report.by_kind(ch, db, project)
        usage = report.llm_usage_by_user(ch, db, project)
        metrics = scraped(pipeline) if pipeline.metrics_url else {}
    elapsed = time.monotonic() - t0
    print(f"\nReport for project {project} (read back from ClickHouse, {elapsed:.1f}s):\n")
    print(table(["kind", "events"], kinds))
    print()
    dropped = traffic.events_sent - got.events
    print(
        table(
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
    print(table(["user", "llm calls", "input tokens", "output tokens", "cost usd"], usage))
    if rules_text is not None:
        print()
        print(rules_text, end="")
    want = len(traffic.unique_events)
    ok = got.events == want and got.joined == want and got.trajectories == len(traffic.trajectories)
    ok = ok and rules_ok
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

"""Metrics and health endpoints of a running pipeline, scraped over HTTP like Prometheus does.

The counters must agree with what ClickHouse holds; readiness must follow the services.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from meterline.demo.report import counts
from meterline.demo.traffic import generate
from meterline.embedded.broker import free_port
from meterline.embedded.runtime import Pipeline
from meterline.ops.endpoints import new_registry
from meterline.ops.monitoring import sink_endpoints
from meterline.producers import MeterlineProducer
from meterline.settings import Settings
from meterline.sinks import ClickHouseSink
from meterline.sinks.metrics import SinkMetrics
from meterline.sinks.service import clickhouse_writer
from tests.fixtures import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum over every series of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and want <= set(lab))


def probe(url: str, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url + path, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def worker_url(pipeline: Pipeline) -> str:
    assert wait_until(lambda: "processor-0" in pipeline.worker_urls(), 60, pipeline=pipeline)
    return pipeline.worker_urls()["processor-0"]


def test_scraped_counters_agree_with_clickhouse(pipeline_factory: Any) -> None:
    pipeline = pipeline_factory()
    assert pipeline.metrics_url
    traffic = generate(project="ops", events=1_500, duplicate_rate=0.05, early_rate=0.1, seed=3)
    assert pipeline.settings.kafka_bootstrap
    topics = pipeline.settings.topics
    producer = MeterlineProducer(pipeline.settings.kafka_bootstrap, topics=topics)
    producer.send_many(traffic.records)
    for i in range(2):
        producer.send_bytes(topics.actions, f"bad-{i}".encode(), b'{"type": "action", ')
    for i in range(3):
        producer.send_bytes(topics.telemetry, f"noid-{i}".encode(), b'{"type": "action"}')
    assert producer.close() == 0

    ch, db = pipeline.clickhouse, pipeline.settings.database
    unique = len(traffic.unique_events)

    def landed() -> bool:
        c = counts(ch, db, "ops")
        return (c.events, c.joined, c.dead_letters) == (unique, unique, 5)

    assert wait_until(landed, 120, pipeline=pipeline), counts(ch, db, "ops")
    worker, up = worker_url(pipeline), pipeline.metrics_url

    def sink_caught_up() -> bool:  # processor counters vs what the sink inserted
        w, s = scrape(worker), scrape(up)
        return all(
            value(w, "meterline_processor_records_out_total", output=out)
            == value(s, "meterline_sink_rows_inserted_total", table=table)
            for out, table in [
                ("enriched", "events"),
                ("trajectory_state", "trajectories"),
                ("dead_letters", "dead_letters"),
            ]
        )

    assert wait_until(sink_caught_up, 30, pipeline=pipeline), (scrape(worker), scrape(up))
    w, s = scrape(worker), scrape(up)
    # the processor's unique events out = unique events in ClickHouse
    assert value(w, "meterline_processor_events_out_total") == unique
    assert value(w, "meterline_processor_events_joined_total") + value(
        w, "meterline_processor_late_joins_total"
    ) == ch.query(f"SELECT count() FROM {db}.events FINAL WHERE joined = 1").result_rows[0][0]
    assert value(w, "meterline_processor_duplicates_dropped_total") == traffic.duplicates_sent
    # every record sent is accounted for: produced, dropped as a duplicate, or dead-lettered
    messages = value(w, "meterline_processor_messages_in_total")
    assert 0 < messages <= len(traffic.records) + 5  # the SDK may frame several per message
    assert (
        unique
        + value(w, "meterline_processor_duplicates_dropped_total")
        + value(w, "meterline_processor_records_out_total", output="trajectory_state")
        + value(w, "meterline_processor_records_out_total", output="dead_letters")
    ) == len(traffic.records) + 5
    # dead letters by reason: the processor's counters = ClickHouse's rows per error_type
    by_type = dict(
        ch.query(f"SELECT error_type, count() FROM {db}.dead_letters FINAL GROUP BY error_type")
        .result_rows
    )
    assert by_type == {"invalid_json": 2, "invalid_record": 3}
    for reason, n in by_type.items():
        assert value(w, "meterline_processor_dead_letters_total", reason=reason) == n
    # the sink inserted every version: unique events plus the late-joined re-emits
    assert value(s, "meterline_sink_rows_inserted_total", table="events") == unique + value(
        w, "meterline_processor_late_joins_total"
    )
    assert value(s, "meterline_sink_rows_inserted_total", table="dead_letters") == 5
    assert value(s, "meterline_sink_batches_total") > 0
    assert value(s, "meterline_sink_insert_seconds_count", table="events") > 0
    assert value(s, "meterline_up", component="up") == 1
    assert value(w, "meterline_up", component="processor") == 1
    # lag: both groups get to zero once everything is committed
    group = pipeline.settings.app_id

    def processor_lag_zero() -> bool:
        w = scrape(worker)
        series = [k for k in w if k[0] == "meterline_consumer_lag"]
        return len(series) == 3 * 4 and total(w, "meterline_consumer_lag", group=group) == 0

    assert wait_until(processor_lag_zero, 30), scrape(worker)
    sink_group = pipeline.settings.sink_group
    assert wait_until(
        lambda: total(scrape(up), "meterline_consumer_lag", group=sink_group) == 0
        and any(k[0] == "meterline_consumer_lag" for k in scrape(up)),
        30,
    )
    for url in (worker, up):
        assert probe(url, "/healthz") == (200, {"status": "ok", "problems": []})
        assert probe(url, "/readyz") == (200, {"status": "ok", "problems": []})


def test_readiness_is_false_while_inserts_fail_and_true_again_after(pipeline_factory: Any) -> None:
    pipeline = pipeline_factory()
    url, db, ch = pipeline.metrics_url, pipeline.settings.database, pipeline.clickhouse
    assert url
    assert wait_until(lambda: probe(url, "/readyz")[0] == 200, 30, pipeline=pipeline)
    ch.command(f"DROP TABLE {db}.events")  # every insert into events now fails
    assert pipeline.settings.kafka_bootstrap
    producer = MeterlineProducer(pipeline.settings.kafka_bootstrap, topics=pipeline.settings.topics)
    traffic = generate(project="ops-down", events=50, seed=5)
    producer.send_many(traffic.records)
    assert producer.close() == 0

    assert wait_until(lambda: probe(url, "/readyz")[0] == 503, 60, pipeline=pipeline)
    _, body = probe(url, "/readyz")
    assert any("last insert failed" in p for p in body["problems"]), body
    assert probe(url, "/healthz")[0] == 200  # alive: retrying, not stuck
    assert value(scrape(url), "meterline_sink_write_failures_total") > 0

    # recreate the table: the held batch goes in
    clickhouse_writer(pipeline.settings.sink_config(), ch)
    assert wait_until(lambda: probe(url, "/readyz")[0] == 200, 60, pipeline=pipeline)
    assert wait_until(
        lambda: counts(ch, db, "ops-down").events == len(traffic.unique_events), 60
    )


def test_a_worker_is_ready_once_in_its_group_with_its_state_recovered(
    pipeline_factory: Any,
) -> None:
    pipeline = pipeline_factory(sink=False)
    url = worker_url(pipeline)
    # probed from its very start (probing once hung a worker's start-up), not ready until
    # it has joined the group: that takes seconds on Tansu
    first = probe(url, "/readyz")
    waited = pipeline.wait_ready(timeout_s=120)
    assert probe(url, "/readyz") == (200, {"status": "ok", "problems": []})
    if first[0] != 200:
        assert first[1]["problems"] == [
            "consumer group: joining, or table state of the first assignment recovering"
        ], first
    assert waited >= 0


def test_readiness_is_false_while_the_broker_is_unreachable(
    settings: Settings, clickhouse: Any
) -> None:
    closed = settings.with_overrides(kafka_bootstrap=f"127.0.0.1:{free_port()}")  # nobody there
    writer = clickhouse_writer(closed.sink_config(), clickhouse)
    registry = new_registry("sink")
    sink = ClickHouseSink(
        closed.kafka_bootstrap or "",
        closed.topics,
        writer,
        group_id=closed.sink_group,
        metrics=SinkMetrics(registry),
        consumer_config={"log_level": 0},
    )
    stop = threading.Event()
    thread = threading.Thread(target=sink.run, args=(stop,), daemon=True)
    thread.start()
    server = sink_endpoints(closed, registry, sink, thread, clickhouse, "sink")
    assert server is not None
    try:
        status, body = probe(server.url, "/readyz")
        assert status == 503
        assert any("unreachable" in p and closed.kafka_bootstrap in p for p in body["problems"])
        assert probe(server.url, "/healthz")[0] == 200
        assert (closed.effective_run_dir / "sink.json").exists()
    finally:
        stop.set()
        thread.join(10)
        server.stop()
    assert not (closed.effective_run_dir / "sink.json").exists()
    assert not thread.is_alive()


def test_status_and_metrics_while_meterline_up_runs(tmp_path: Path) -> None:
    from tests.integration.test_cli import meterline

    data_dir = tmp_path / "ml"
    cmd, env = meterline("up", data_dir=data_dir)
    up = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert up.stdout is not None
        lines = []
        while not any("Ctrl-C to stop" in line for line in lines):
            lines.append(up.stdout.readline())
            assert up.poll() is None, "".join(lines)
        assert any(line.startswith("metrics http://127.0.0.1:") for line in lines), lines
        info = json.loads((data_dir / "run" / "up.json").read_text())
        assert info["pid"] == up.pid
        traffic = generate(project="status", events=200, seed=9)
        producer = MeterlineProducer(info["kafka_bootstrap"])
        producer.send_many(traffic.records)
        assert producer.close() == 0
        unique = len(traffic.unique_events)

        def processed() -> bool:
            files = list((data_dir / "run").glob("processor-*.json"))
            if not files:
                return False
            worker = json.loads(files[0].read_text())["url"]
            return value(scrape(worker), "meterline_processor_events_out_total") == unique

        assert wait_until(processed, 120)
        assert wait_until(
            lambda: value(scrape(info["url"]), "meterline_sink_rows_inserted_total", table="events")
            >= unique,
            60,
        )
        rows = value(scrape(info["url"]), "meterline_sink_rows_inserted_total", table="events")

        cmd, env = meterline("status", data_dir=data_dir)
        env["METERLINE_CONTROL_PLANE"] = str(ROOT / "docs" / "examples" / "control-plane.yaml")
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        out = done.stdout
        assert f"Kafka {info['kafka_bootstrap']}" in out
        assert re.search(r"meterline\.actions\s+4\s+\d+", out), out
        assert re.search(r"meterline-processor\s+total\s+\d+", out), out
        assert "is held by the running `meterline up`" in out and f"(pid {up.pid})" in out
        assert re.search(rf"meterline\.events\s+{int(rows)}\n", out), out
        assert "Control plane: version " in out
        assert "processor-0" in out and info["url"] in out
    finally:
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0
    assert not (data_dir / "run" / "up.json").exists()

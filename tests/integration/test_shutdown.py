"""Graceful shutdown: SIGTERM to ``meterline sink``, ``meterline worker`` and
``meterline up`` flushes the batch in flight, commits offsets and exits 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from meterline.demo.report import counts
from meterline.producers import MeterlineProducer
from meterline.schemas import (
    ActionEvent,
    EnrichedEvent,
    Topics,
    TrajectoryRecord,
    decode_as,
    framing,
)
from meterline.settings import Settings
from tests.fixtures import committed_offsets, wait_until

pytestmark = pytest.mark.integration


def records(project: str, n: int) -> list[Any]:
    out: list[Any] = [TrajectoryRecord(project=project, trace_id=f"t{i}") for i in range(10)]
    out += [
        ActionEvent(project=project, event_id=f"e{i}", trace_id=f"t{i % 10}", name="tool")
        for i in range(n)
    ]
    return out


def end_offsets(bootstrap: str, topic_names: list[str], partitions: int = 4) -> int:
    """Sum over ``topic_names`` of (last offset + 1), found by reading every partition to its
    end (Tansu's reported high watermark lags behind the real end, see test_end_offsets)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"ends-{time.time()}",
                         "enable.auto.commit": False})  # fmt: skip
    try:
        consumer.assign(
            [TopicPartition(t, p, 0) for t in topic_names for p in range(partitions)]
        )
        last: dict[tuple[str, int], int] = {}
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < 3:
            msgs = consumer.consume(1_000, 0.5)
            for m in msgs:
                if m.error() is None:
                    last[(str(m.topic()), int(m.partition() or 0))] = int(m.offset() or 0)
            if msgs:
                idle_since = time.monotonic()
        return sum(o + 1 for o in last.values())
    finally:
        consumer.close()


def send(bootstrap: str, topics: Topics, recs: list[Any]) -> None:
    producer = MeterlineProducer(bootstrap, topics=topics)
    producer.send_many(recs)
    assert producer.close() == 0


def committed(bootstrap: str, group: str, topic_names: list[str], partitions: int = 4) -> int:
    """Sum of the group's committed offsets over ``topic_names`` (Kafka messages consumed;
    the SDK frames many records into one message)."""
    done = committed_offsets(bootstrap, group, topic_names, partitions)
    return sum(offset for offset in done.values() if offset > 0)


def events_below_committed(bootstrap: str, group: str, topic: str, partitions: int = 4) -> int:
    """How many distinct events the messages of ``topic`` below ``group``'s committed offsets
    carry (the enriched topic may carry an event twice: unjoined, then joined)."""
    done = committed_offsets(bootstrap, group, [topic], partitions)
    limits = {p: offset for (_, p), offset in done.items()}
    reader = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False}
    )
    ids: set[str] = set()
    try:
        for partition, limit in limits.items():
            if limit <= 0:
                continue
            reader.assign([TopicPartition(topic, partition, 0)])
            while True:
                msgs = [m for m in reader.consume(1000, 2.0) if m.error() is None]
                below = [m for m in msgs if (m.offset() or 0) < limit]
                ids.update(
                    decode_as(EnrichedEvent, record).event.event_id
                    for m in below
                    for record in (  # the workers frame their outputs: batch messages
                        framing.split(m.value()) if framing.is_batch(m.headers())
                        else [m.value() or b""]
                    )
                )  # fmt: skip
                if not msgs or len(below) < len(msgs) or (msgs[-1].offset() or 0) >= limit - 1:
                    break
    finally:
        reader.close()
    return len(ids)


def chdb_count(path: Path, sql: str) -> int:
    """Run ``sql`` on the chDB at ``path`` in a fresh process (chDB: one path per process)."""
    code = (
        "import sys, json, clickhouse_connect;"
        f"c = clickhouse_connect.get_client(dsn='chdb://{path}');"
        f"print(json.dumps(c.query({sql!r}).result_rows[0][0]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return int(json.loads(out.stdout.strip().splitlines()[-1]))


def spawn(args: list[str], settings: Settings, **extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METERLINE_")}
    env.update(settings.to_env())
    env.update(extra)
    return subprocess.Popen(
        [sys.executable, "-m", "meterline.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop(proc: subprocess.Popen[str], timeout_s: float = 60) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.stdout is not None
    return code, proc.stdout.read()[-3000:]


def test_sigterm_to_the_sink_finishes_its_batch_and_commits(
    pipeline_factory: Any, tmp_path: Path
) -> None:
    p = pipeline_factory()
    assert p.settings.kafka_bootstrap
    send(p.settings.kafka_bootstrap, p.settings.topics, records("term", 20_000))
    db = p.settings.database
    assert wait_until(lambda: counts(p.clickhouse, db, "term").events == 20_000, 120, pipeline=p)

    # a second sink, in its own process and group, into its own chDB
    path = tmp_path / "sink-ch"
    mine = replace(p.settings, sink_group=p.settings.sink_group + "-2",
                   clickhouse_url=f"chdb://{path}")
    proc = spawn(["sink"], mine)
    topics = list(mine.topics.sink_inputs)
    bootstrap = p.settings.kafka_bootstrap
    wait_until(lambda: committed(bootstrap, mine.sink_group, topics) > 0, 60, interval_s=0.1)
    code, output = stop(proc)  # most likely mid-stream: 20,000 events + states to read
    assert code == 0, output
    below = events_below_committed(bootstrap, mine.sink_group, mine.topics.enriched)
    assert below > 0, output
    # exactly the events below the committed offsets are in ClickHouse: nothing committed
    # unwritten, and the batch in flight at SIGTERM was written *and* committed before exit
    rows = chdb_count(path, f"SELECT uniqExact(event_id) FROM {db}.events")
    assert rows == below, (rows, below)


def test_sigterm_to_a_worker_commits_what_it_processed(
    pipeline_factory: Any,
) -> None:
    p = pipeline_factory(workers=0)  # topics and sink only; the worker is ours
    assert p.settings.kafka_bootstrap
    proc = spawn(["worker"], p.settings)
    recs = records("wterm", 3_000)
    send(p.settings.kafka_bootstrap, p.settings.topics, recs)
    db = p.settings.database
    assert wait_until(lambda: counts(p.clickhouse, db, "wterm").events == 3_000, 120)
    code, output = stop(proc)
    assert code == 0, output
    # offsets of everything it processed are committed: a new worker would not replay it
    raw_topics = list(p.settings.topics.raw)
    raw = committed(p.settings.kafka_bootstrap, p.settings.app_id, raw_topics)
    assert raw == end_offsets(p.settings.kafka_bootstrap, raw_topics) > 0, output


def test_sigterm_to_up_drains_into_clickhouse_and_exits_zero(tmp_path: Path) -> None:
    data = tmp_path / "ml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("METERLINE_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "meterline.cli", "up", "--data-dir", str(data),
         "--dashboard-port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        bootstrap = None
        seen: list[str] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and bootstrap is None and proc.poll() is None:
            line = proc.stdout.readline()
            seen.append(line)
            if "kafka 127.0.0.1:" in line:
                bootstrap = line.split("kafka ")[1].split()[0]
        if bootstrap is None:
            pytest.fail("meterline up did not come up:\n" + "".join(seen[-20:]))
        topics = Topics()
        send(bootstrap, topics, records("upterm", 2_000))
        # processed (the processor committed every raw message); the sink may still be writing
        ends = end_offsets(bootstrap, list(topics.raw))
        assert wait_until(
            lambda: committed(bootstrap, "meterline-processor", list(topics.raw)) >= ends > 0, 120
        )
        code, output = stop(proc)
        assert code == 0, output
    finally:
        if proc.poll() is None:  # a failed assertion must not leave `up` running
            proc.kill()
            proc.wait(30)
    n = chdb_count(data / "clickhouse",
                   "SELECT uniqExact(event_id) FROM meterline.events WHERE project = 'upterm'")
    assert n == 2_000, output


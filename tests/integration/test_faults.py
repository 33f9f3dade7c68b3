"""Crashes and rebalances on real Tansu + chDB: ClickHouse ends with each event exactly once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from meterline.billing import endpoint
from meterline.demo.report import counts
from meterline.demo.traffic import Traffic, generate
from meterline.embedded.child import ChildProcess
from meterline.embedded.runtime import Pipeline
from meterline.producers import MeterlineProducer
from meterline.schemas import ActionEvent, ActionKind, TrajectoryRecord
from meterline.settings import Settings
from meterline.stream_processors.faust_layer.end_offsets import true_end_offsets
from meterline.stream_processors.faust_layer.fetch_audit import FAULT_ENV, PAUSE_FAULT_ENV
from tests.fixtures import committed_offsets, wait_until

pytestmark = pytest.mark.integration


def send(p: Pipeline, records: list[Any]) -> None:
    assert p.settings.kafka_bootstrap
    producer = MeterlineProducer(p.settings.kafka_bootstrap, topics=p.settings.topics)
    producer.send_many(records)
    assert producer.close() == 0 and producer.stats.failed == 0


def exactly_once(
    p: Pipeline,
    traffic: Traffic,
    timeout_s: float = 150,
    *,
    client: Any | None = None,
    interval_s: float = 0.3,
) -> None:
    """Wait until ``events FINAL`` holds exactly the unique events of ``traffic``, all
    joined, then check none is missing and none is doubled.
    ``client``: where to read (default the pipeline's chDB)."""
    ch = p.clickhouse if client is None else client
    want = len(traffic.unique_events)
    db = p.settings.database

    def done() -> bool:
        c = counts(ch, db, traffic.project)
        return c.events == want and c.joined == want

    assert wait_until(done, timeout_s, pipeline=p, interval_s=interval_s), (
        counts(ch, db, traffic.project),
        missing(ch, db, traffic),
    )
    rows, distinct = ch.query(
        f"SELECT count(), uniqExact(event_id) FROM {db}.events FINAL WHERE project = %(p)s",
        parameters={"p": traffic.project},
    ).result_rows[0]
    assert (rows, distinct) == (want, want)
    doubled = ch.query(
        f"SELECT project, event_id, count() AS n FROM {db}.events FINAL "
        "GROUP BY project, event_id HAVING n > 1 LIMIT 10"
    ).result_rows
    assert doubled == []
    assert event_ids(ch, db, traffic.project) == set(traffic.unique_events)


def event_ids(ch: Any, db: str, project: str) -> set[str]:
    """Distinct ``event_id`` of ``project`` in the events table."""
    rows = ch.query(
        f"SELECT DISTINCT event_id FROM {db}.events WHERE project = %(p)s",
        parameters={"p": project},
    ).result_rows
    return {r[0] for r in rows}


def missing(ch: Any, db: str, traffic: Traffic, limit: int = 30) -> list[tuple[str, str]]:
    """``(event_id, trace_id)`` of up to ``limit`` unique events not in ClickHouse: where to
    look when a run comes up short (one trace's parked events? scattered?)."""
    stored = event_ids(ch, db, traffic.project)
    gone = [e for i, e in traffic.unique_events.items() if i not in stored]
    return [(e.event_id, e.trace_id or "") for e in gone[:limit]]


def unjoined_traces(ch: Any, db: str, project: str, limit: int = 10) -> list[tuple[str, int]]:
    """``(trace_id, events)`` of traces with events stored unjoined (``events FINAL``)."""
    return [
        (str(t), int(n))
        for t, n in ch.query(
            f"SELECT trace_id, count() FROM {db}.events FINAL WHERE project = %(p)s "
            f"AND joined = 0 GROUP BY trace_id ORDER BY trace_id LIMIT {int(limit)}",
            parameters={"p": project},
        ).result_rows
    ]


def retries_of(traffic: Traffic, share: float, seed: int = 3) -> list[Any]:
    """Events re-sent later with the same event_id, as a producer retry after a timeout."""
    rng = random.Random(seed)
    events = [r for r in traffic.records if not isinstance(r, TrajectoryRecord)]
    return rng.sample(events, int(len(events) * share))


def test_kill_9_of_a_processor_worker_mid_stream_loses_and_doubles_nothing(
    pipeline_factory: Any,
) -> None:
    # a stall is noticed (readiness, log with the consumer's state) and resumed within the wait
    p = pipeline_factory(log_level="info", worker_stall_s=15)
    traffic = generate(project="kill9", events=40_000, duplicate_rate=0.02, early_rate=0.05)
    half = len(traffic.records) // 2
    send(p, traffic.records[:half])
    db = p.settings.database
    assert wait_until(lambda: counts(p.clickhouse, db, "kill9").events > 2_000, 60, pipeline=p)

    victim = p.workers.pop()
    victim.kill()  # SIGKILL: no commit, no flush, no goodbye
    send(p, traffic.records[half:] + retries_of(traffic, 0.05))
    p.add_worker()
    try:
        exactly_once(p, traffic)
    except AssertionError:
        diagnose(p, p.clickhouse, traffic.project)
        raise


def diagnose(p: Pipeline, ch: Any, project: str) -> None:
    """Print what a failed exactly-once wait needs explaining: the unjoined events by trace,
    the raw offsets left uncommitted, every worker's warnings and log tail."""
    print(f"unjoined, by trace: {unjoined_traces(ch, p.settings.database, project)}")
    # held commit (records taken, never processed) or committed past them?
    left = uncommitted(p, p.settings.app_id, p.settings.topics.raw)
    print(f"raw offsets not committed: {left}")
    for w in p.workers:  # the log file holds the killed worker's lines too
        text = w.log_path.read_text(errors="replace").splitlines()
        print(f"--- worker {w.index}: warnings")
        print("\n".join(line for line in text if "WARN" in line))
        print(f"--- worker {w.index}: tail\n{w.log_tail(200)}")


def test_events_held_for_the_grace_period_survive_kill_9_after_their_offsets_are_committed(
    pipeline_factory: Any,
) -> None:
    """Early events wait in the join state (a changelogged table), their raw offsets
    committed. After a kill -9 the next worker must recover *all* of them from the changelog,
    including its last record batch, which Tansu leaves out of the end offset it reports
    (stream_processors/faust_layer/end_offsets.py; before the probe, most of these events were
    lost)."""
    p = pipeline_factory(join_grace_s=600.0, log_level="info")
    project, traces, per_trace = "held", 40, 25
    early = [
        ActionEvent(project=project, event_id=f"e{t}-{i}", name="x", trace_id=f"t{t}",
                    kind=ActionKind.TOOL_CALL)
        for t in range(traces) for i in range(per_trace)
    ]  # fmt: skip
    send(p, early)
    raw = p.settings.topics.raw
    assert wait_until(lambda: uncommitted(p, p.settings.app_id, raw) == 0, 120, pipeline=p)
    p.workers.pop().kill()  # every event is parked and its offset committed: no replay
    p.add_worker()
    send(p, [TrajectoryRecord(project=project, trace_id=f"t{t}") for t in range(traces)])
    want = traces * per_trace
    db = p.settings.database

    def all_joined() -> bool:
        c = counts(p.clickhouse, db, project)
        return (c.events, c.joined) == (want, want)

    assert wait_until(all_joined, 300, pipeline=p), (
        counts(p.clickhouse, db, project), p.workers[-1].log_tail(60)
    )


def test_a_fetched_record_lost_inside_the_worker_is_read_again(
    pipeline_factory: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Faust can lose a fetched record inside the worker around a rebalance (the 200k test
    caught one: stream_processors/faust_layer/commits.py). Injected here: every actions
    partition loses its record at offset 1 once. The commits hold there, are resolved from the
    log after 2 s (the record is in it: re-read from it), and ClickHouse ends with every event
    once."""
    monkeypatch.setenv(FAULT_ENV, f"{settings.topics.actions}:*:1")
    p = pipeline_factory(commit_resolve_after_s=2.0, log_level="info")
    traffic = generate(project="lost", events=4_000, duplicate_rate=0.0, early_rate=0.0)
    trajectories = [r for r in traffic.records if isinstance(r, TrajectoryRecord)]
    send(p, trajectories)
    events = [r for r in traffic.records if not isinstance(r, TrajectoryRecord)]
    for i in range(4):  # four sends: several messages per partition, offset 1 among them
        send(p, events[i::4])
    exactly_once(p, traffic, 180)
    log = "\n".join(w.log_path.read_text(errors="replace") for w in p.workers)
    assert "fault injection: lost fetched record" in log
    assert "re-reading the partition from it" in log, log[-5000:]
    raw = p.settings.topics.raw  # and the commits move on past the re-read records
    assert wait_until(lambda: uncommitted(p, p.settings.app_id, raw) == 0, 60, pipeline=p)


@pytest.mark.parametrize("ignored", [1, 2], ids=["resume", "rejoin"])
def test_a_worker_whose_partitions_stay_paused_is_reported_stalled_and_resumes(
    pipeline_factory: Any, monkeypatch: pytest.MonkeyPatch, ignored: int
) -> None:
    """A worker that is ready but fetches nothing while its partitions have lag (seen after
    a kill -9 and restart, issue 21 item 8). Injected here: its stream partitions stay paused
    after recovery. The stall watch (3 s) reports it, logs the consumer's state, resumes the
    partitions (``rejoin``: that resume is ignored too, so it rejoins the group), and every
    event lands once; with the watch off (0) nothing lands."""
    monkeypatch.setenv(PAUSE_FAULT_ENV, str(ignored))
    p = pipeline_factory(worker_stall_s=3.0, log_level="info")
    traffic = generate(project="stall", events=2_000, duplicate_rate=0.0, early_rate=0.0)
    send(p, traffic.records)
    exactly_once(p, traffic, 90)
    log = "\n".join(w.log_path.read_text(errors="replace") for w in p.workers)
    assert "fault injection: stream partitions stay paused" in log
    assert "processor: stalled for" in log and "paused=[" in log, log[-5000:]
    assert "stall watch: resumed" in log and "the worker is moving again" in log
    if ignored == 2:
        assert "asked to rejoin the consumer group" in log, log[-5000:]


class SinkProcess(ChildProcess):
    """``meterline sink`` as a separate OS process with its own chDB under
    ``settings.data_dir`` (chDB allows one data path per process, and the test process
    holds the session's). While it runs, the test reads that chDB through the query endpoint
    the sink serves (``meterline/billing/endpoint.py``)."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        super().__init__(log_path)
        self.settings = settings

    def start(self) -> SinkProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("METERLINE_")}
        env.update(self.settings.to_env())
        self._spawn(["meterline.cli", "sink"], env)
        return self

    def client(self, timeout_s: float = 120) -> endpoint.RemoteClient:
        """This process's query endpoint (served once its chDB is open, tables created)."""
        found: list[endpoint.RemoteClient] = []

        def up() -> bool:
            assert self.alive(), self.log_tail()
            remote = endpoint.find(self.settings.data_dir)  # ignores a dead process's file
            if remote is not None:
                found.append(remote)
            return remote is not None

        assert wait_until(up, timeout_s, interval_s=0.2), self.log_tail()
        return found[-1]


def stored(client: Any, db: str, project: str) -> int:
    """Event rows stored for ``project``, copies included (no FINAL: cheap to poll)."""
    return int(
        client.query(
            f"SELECT count() FROM {db}.events WHERE project = %(p)s", parameters={"p": project}
        ).result_rows[0][0]
    )


def uncommitted(p: Pipeline, group: str, topics: tuple[str, ...]) -> int:
    """Offsets of ``topics`` below their true end offsets (probed: Tansu under-reports them,
    tests/integration/test_end_offsets.py) that ``group`` has not committed: what its next
    member replays."""
    from confluent_kafka import Consumer, TopicPartition
    from faust.types import TP

    config = {"bootstrap.servers": p.settings.kafka_bootstrap}
    done = committed_offsets(p.settings.kafka_bootstrap, group, topics, p.settings.partitions)
    committed = {TP(t, i): offset for (t, i), offset in done.items()}
    consumer = Consumer({**config, "group.id": group})
    try:
        tps = [TopicPartition(t, i) for t in topics for i in range(p.settings.partitions)]
        reported = {}
        for tp in tps:
            low, high = consumer.get_watermark_offsets(tp, timeout=30, cached=False)
            reported[TP(tp.topic, tp.partition)] = high
            if committed[TP(tp.topic, tp.partition)] < 0:
                committed[TP(tp.topic, tp.partition)] = low
    finally:
        consumer.close()
    ends = true_end_offsets(config, reported)
    return sum(max(0, (ends[tp] or 0) - committed[tp]) for tp in ends)


def unique_events_in_chdb(path: Path, db: str, project: str) -> int:
    """``uniqExact(event_id)`` in the chDB at ``path``, read by a short process of its own
    (chDB: one data path per process; nobody may hold ``path``)."""
    code = (
        "import sys, clickhouse_connect\n"
        "c = clickhouse_connect.get_client(dsn='chdb://' + sys.argv[1])\n"
        f"q = 'SELECT uniqExact(event_id) FROM {db}.events WHERE project = %(p)s'\n"
        "print(c.query(q, parameters={'p': sys.argv[2]}).result_rows[0][0])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path), project],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return int(done.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(1200)  # ~1-1.5 min on 2 cores; generous for a shared CI machine
def test_kill_9_of_a_worker_and_of_the_sink_process_in_a_200k_run_loses_and_doubles_nothing(
    pipeline_factory: Any, tmp_path: Path
) -> None:
    """Issue 4 at full size: 200,000 unique events (~2% duplicates, ~5% early, 5% producer
    retries). SIGKILL of the processor worker, restart; later SIGKILL of the sink process
    (``meterline sink`` with its own chDB), restart on the same chDB path and group.
    ClickHouse ends with exactly the unique events: none missing, none doubled."""
    # broker, topics, worker; the sink is ours. Info logs: Faust's assignments and seeks
    p = pipeline_factory(workers=1, sink=False, log_level="info")
    db, project = p.settings.database, "kill9x2"
    traffic = generate(project=project, events=200_000, duplicate_rate=0.02, early_rate=0.05)
    want = len(traffic.unique_events)
    chdb = tmp_path / "sink" / "clickhouse"
    sink_settings = replace(p.settings, data_dir=tmp_path / "sink", clickhouse_url=f"chdb://{chdb}")
    log = tmp_path / "sink.log"
    sink = SinkProcess(sink_settings, log).start()
    try:
        ch = sink.client()
        first, half = len(traffic.records) * 2 // 5, len(traffic.records) // 2
        send(p, traffic.records[:first])

        # 1. SIGKILL the processor worker once some events are in ClickHouse, right after
        # more arrive: a worker that has caught up may have committed everything it read
        assert wait_until(lambda: stored(ch, db, project) >= 10_000, 300, pipeline=p, interval_s=1)
        send(p, traffic.records[first:half])
        p.workers.pop().kill()
        # it left raw records uncommitted: the next worker replays them (dedupe's case)
        assert uncommitted(p, p.settings.app_id, p.settings.topics.raw) > 0
        p.add_worker()
        send(p, traffic.records[half:] + retries_of(traffic, 0.05))

        # 2. SIGKILL the sink process halfway through
        assert wait_until(
            lambda: stored(ch, db, project) >= want // 2, 600, pipeline=p, interval_s=1
        ), sink.log_tail()
        sink.kill()
        assert sink.returncode == -signal.SIGKILL
        assert endpoint.find(sink_settings.data_dir) is None  # gone: the path is free
        survived = unique_events_in_chdb(chdb, db, project)
        assert 0 < survived < want, survived  # inserted before the kill; work left after it
        sink = SinkProcess(sink_settings, log).start()  # same group, same chDB path
        ch = sink.client()

        try:
            exactly_once(p, traffic, 600, client=ch, interval_s=2)
        except AssertionError:
            diagnose(p, ch, project)
            raise
    finally:
        code = sink.stop(60)
    assert code == 0, sink.log_tail()


def test_workers_joining_and_leaving_mid_stream_keep_totals_exact(pipeline_factory: Any) -> None:
    p = pipeline_factory(workers=2, log_level="info")
    traffic = generate(project="rebalance", events=30_000, duplicate_rate=0.02, early_rate=0.05)
    third = len(traffic.records) // 3
    send(p, traffic.records[:third])
    db = p.settings.database
    assert wait_until(lambda: counts(p.clickhouse, db, "rebalance").events > 1_000, 60, pipeline=p)
    p.add_worker()  # a third worker joins: rebalance
    send(p, traffic.records[third : 2 * third])
    leaver = p.workers.pop(0)
    leaver.stop()  # one leaves gracefully (SIGTERM): rebalance again
    send(p, traffic.records[2 * third :] + retries_of(traffic, 0.05))
    try:
        exactly_once(p, traffic)
    except AssertionError:
        for w in p.workers:  # what the remaining workers were doing
            print(f"--- worker {w.index}\n{w.log_tail(80)}")
        raise


def test_sink_crash_between_insert_and_commit_replays_without_doubles(
    pipeline_factory: Any,
) -> None:
    """The sink's failure window: rows inserted, offsets not committed. The next sink in the
    group replays the batch; ReplacingMergeTree keyed by event_id absorbs the repeat."""
    from dataclasses import replace

    from meterline.sinks.service import build_sink, clickhouse_writer

    p = pipeline_factory()
    traffic = generate(project="sinkcrash", events=5_000)
    send(p, traffic.records)
    exactly_once(p, traffic)  # the enriched topic now holds every event

    crashed = replace(
        p.settings, database=p.settings.database + "_b", sink_group=p.settings.sink_group + "-b"
    )
    writer = clickhouse_writer(crashed.sink_config(), p.clickhouse)
    sink = build_sink(crashed.sink_config(), writer)
    sink.batch_size = 500  # crash after the first small batch

    class Crash(Exception):
        pass

    def crash(_offsets: Any) -> None:
        raise Crash

    sink._commit = crash  # type: ignore[method-assign]
    with pytest.raises(Crash):
        deadline = 0
        while sink.poll_once() == 0 and deadline < 100:
            deadline += 1
    sink.close()  # leaves the group without committing
    assert sum(sink.stats.rows.values()) > 0  # inserted, then crashed before the commit

    replay = build_sink(crashed.sink_config(), writer)
    empty_polls = 0
    try:
        for _ in range(300):  # until drained: 3 empty polls after the first data
            got = replay.poll_once()
            empty_polls = 0 if got or not replay.stats.batches else empty_polls + 1
            if empty_polls >= 3:
                break
    finally:
        replay.close()
    # the replay re-read the crashed batch (never committed) and everything after it
    assert replay.stats.rows["events"] >= len(traffic.unique_events)
    c = counts(p.clickhouse, crashed.database, "sinkcrash")
    want = len(traffic.unique_events)
    assert (c.events, c.joined) == (want, want)

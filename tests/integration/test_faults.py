"""Crashes and rebalances on real Tansu + chDB: ClickHouse ends with each event exactly once."""

from __future__ import annotations

import random
from typing import Any

import pytest

from producers import MeterlineProducer
from schemas import TrajectoryRecord
from stream_processors.demo.report import counts
from stream_processors.demo.traffic import Traffic, generate
from stream_processors.embedded.runtime import Pipeline
from tests.fixtures import wait_until

pytestmark = pytest.mark.integration


def send(p: Pipeline, records: list[Any]) -> None:
    assert p.settings.kafka_bootstrap
    producer = MeterlineProducer(p.settings.kafka_bootstrap, topics=p.settings.topics)
    producer.send_many(records)
    assert producer.close() == 0 and producer.stats.failed == 0


def exactly_once(
    p: Pipeline, traffic: Traffic, timeout_s: float = 150, min_joined_share: float = 1.0
) -> None:
    want = len(traffic.unique_events)
    db = p.settings.database

    def done() -> bool:
        c = counts(p.clickhouse, db, traffic.project)
        return c.events == want and c.joined >= min_joined_share * want

    assert wait_until(done, timeout_s, pipeline=p), counts(p.clickhouse, db, traffic.project)
    rows = p.clickhouse.query(
        f"SELECT event_id, count() AS n FROM {db}.events FINAL "
        "WHERE project = %(p)s GROUP BY event_id HAVING n > 1",
        parameters={"p": traffic.project},
    ).result_rows
    assert rows == []
    ids = {
        r[0]
        for r in p.clickhouse.query(
            f"SELECT event_id FROM {db}.events FINAL WHERE project = %(p)s",
            parameters={"p": traffic.project},
        ).result_rows
    }
    assert ids == set(traffic.unique_events)


def retries_of(traffic: Traffic, share: float, seed: int = 3) -> list[Any]:
    """Events re-sent later with the same event_id, as a producer retry after a timeout."""
    rng = random.Random(seed)
    events = [r for r in traffic.records if not isinstance(r, TrajectoryRecord)]
    return rng.sample(events, int(len(events) * share))


def test_kill_9_of_a_processor_worker_mid_stream_loses_and_doubles_nothing(
    pipeline_factory: Any,
) -> None:
    p = pipeline_factory()
    traffic = generate(project="kill9", events=40_000, duplicate_rate=0.02, early_rate=0.05)
    half = len(traffic.records) // 2
    send(p, traffic.records[:half])
    db = p.settings.database
    assert wait_until(lambda: counts(p.clickhouse, db, "kill9").events > 2_000, 60, pipeline=p)

    victim = p.workers.pop()
    victim.kill()  # SIGKILL: no commit, no flush, no goodbye
    send(p, traffic.records[half:] + retries_of(traffic, 0.05))
    p.add_worker()
    # Counting is exact; the join tolerance is Tansu's (see the rebalance test below).
    exactly_once(p, traffic, min_joined_share=0.99)


def test_workers_joining_and_leaving_mid_stream_keep_totals_exact(pipeline_factory: Any) -> None:
    p = pipeline_factory(workers=2)
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
    # Counting is exact. The join may miss a few events here: Tansu under-reports changelog
    # highwaters (test_tansu_reports_the_last_batch_base_offset_as_highwater), so a worker
    # taking over a partition can recover join state without the last changelog batch.
    exactly_once(p, traffic, min_joined_share=0.99)


def test_tansu_reports_the_last_batch_base_offset_as_highwater(pipeline_factory: Any) -> None:
    """Documents the broker bug behind the join tolerance above. When this fails, Tansu
    reports true highwaters: require every event joined in the rebalance test."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    p = pipeline_factory(workers=0)
    topic = p.settings.topics.enriched
    producer = Producer({"bootstrap.servers": p.settings.kafka_bootstrap, "linger.ms": 50})
    for _ in range(1_000):
        producer.produce(topic, value=b"x", key=b"k", partition=0)
    producer.flush(10)
    consumer = Consumer({"bootstrap.servers": p.settings.kafka_bootstrap, "group.id": "hw"})
    _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
    consumer.close()
    assert high < 1_000  # Kafka would say 1000 (last offset + 1)


def test_sink_crash_between_insert_and_commit_replays_without_doubles(
    pipeline_factory: Any,
) -> None:
    """The sink's failure window: rows inserted, offsets not committed. The next sink in the
    group replays the batch; ReplacingMergeTree keyed by event_id absorbs the repeat."""
    from dataclasses import replace

    from stream_processors.services import build_sink, clickhouse_writer

    p = pipeline_factory()
    traffic = generate(project="sinkcrash", events=5_000)
    send(p, traffic.records)
    exactly_once(p, traffic)  # the enriched topic now holds every event

    crashed = replace(
        p.settings, database=p.settings.database + "_b", sink_group=p.settings.sink_group + "-b"
    )
    writer = clickhouse_writer(crashed, p.clickhouse)
    sink = build_sink(crashed, writer)
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

    replay = build_sink(crashed, writer)
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

"""End to end on real Tansu + chDB: producer -> Faust processor -> sink -> ClickHouse."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from confluent_kafka import Producer

from meterline.demo.report import counts
from meterline.demo.traffic import generate
from meterline.embedded.runtime import Pipeline
from meterline.producers import MeterlineProducer
from meterline.schemas import ActionEvent, ActionKind, encode, framing
from tests.fixtures import wait_until

pytestmark = pytest.mark.integration


def _producer(p: Pipeline) -> MeterlineProducer:
    assert p.settings.kafka_bootstrap
    return MeterlineProducer(p.settings.kafka_bootstrap, topics=p.settings.topics)


def test_10k_events_with_duplicates_and_early_events_land_once_each_joined(
    pipeline_factory: Any,
) -> None:
    pipeline = pipeline_factory()
    traffic = generate(
        project="it-10k", events=9_000, duplicate_rate=0.11, early_rate=0.20, seed=11
    )
    # ~10,000 events sent: ~10% duplicates, ~10% sent before their trajectory record
    assert 9_900 <= traffic.events_sent <= 10_100
    assert traffic.duplicates_sent >= 0.09 * traffic.events_sent
    assert traffic.early_events >= 0.09 * traffic.events_sent
    producer = _producer(pipeline)
    producer.send_many(traffic.records)
    assert producer.close() == 0 and producer.stats.failed == 0

    want = len(traffic.unique_events)
    db = pipeline.settings.database

    def done() -> bool:
        c = counts(pipeline.clickhouse, db, "it-10k")
        return c.events == want and c.joined == want and c.trajectories == len(traffic.trajectories)

    assert wait_until(done, 120, pipeline=pipeline), counts(pipeline.clickhouse, db, "it-10k")
    ch = pipeline.clickhouse
    ids = {r[0] for r in ch.query(f"SELECT event_id FROM {db}.events FINAL").result_rows}
    assert ids == set(traffic.unique_events)
    unjoined = ch.query(
        f"SELECT count() FROM {db}.events FINAL WHERE trajectory_id = ''"
    ).result_rows
    assert unjoined[0][0] == 0  # every event carries its trajectory's id
    per_trace = dict(
        ch.query(f"SELECT trace_id, count() FROM {db}.events FINAL GROUP BY trace_id").result_rows
    )
    expected: dict[str, int] = {}
    for e in traffic.unique_events.values():
        assert e.trace_id
        expected[e.trace_id] = expected.get(e.trace_id, 0) + 1
    assert per_trace == expected


def test_invalid_records_are_dead_lettered_and_the_rest_of_the_batch_arrives(
    pipeline_factory: Any,
) -> None:
    pipeline = pipeline_factory()
    topics = pipeline.settings.topics
    producer = _producer(pipeline)
    good = [
        ActionEvent(project="dlq", event_id=f"ok-{i}", name="tool", kind=ActionKind.TOOL_CALL)
        for i in range(200)
    ]
    bad_json = b'{"type": "action", "event_id": '
    missing_id = b'{"type": "action", "name": "no_id"}'
    for i, ev in enumerate(good):
        producer.send(ev)
        if i == 50:
            producer.send_bytes(topics.actions, b"k1", bad_json)
        if i == 120:
            producer.send_bytes(topics.actions, b"k2", missing_id)
    assert producer.close() == 0

    db = pipeline.settings.database
    ch = pipeline.clickhouse

    def done() -> bool:
        c = counts(ch, db, "dlq")
        return c.events == 200 and c.dead_letters == 2

    assert wait_until(done, 90, pipeline=pipeline), counts(ch, db, "dlq")
    rows = ch.query(
        f"SELECT source_topic, reason, error_type, payload_base64 FROM {db}.dead_letters FINAL "
        "ORDER BY offset"
    ).result_rows
    by_payload = {base64.b64decode(r[3]): r for r in rows}
    assert set(by_payload) == {bad_json, missing_id}
    assert by_payload[bad_json][2] == "invalid_json"
    assert "event_id: Field required" in by_payload[missing_id][1]
    assert all(r[0] == topics.actions for r in rows)


def test_a_bad_line_in_a_batch_message_is_dead_lettered_with_its_index_and_the_rest_arrive(
    pipeline_factory: Any,
) -> None:
    pipeline = pipeline_factory()
    topics = pipeline.settings.topics
    assert pipeline.settings.kafka_bootstrap
    lines = [
        encode(ActionEvent(project="frame", event_id=f"f-{i}", name="t", kind=ActionKind.TOOL_CALL))
        for i in range(5)
    ]
    lines.insert(2, b'{"type": "action", "name": "no_id"}')
    raw = Producer({"bootstrap.servers": pipeline.settings.kafka_bootstrap})
    raw.produce(topics.actions, key=b"k", value=framing.join(lines), headers=framing.BATCH_HEADERS)
    raw.produce(topics.actions, key=b"k", value=b"", headers=framing.BATCH_HEADERS)  # empty
    assert raw.flush(30) == 0

    db, ch = pipeline.settings.database, pipeline.clickhouse

    def done() -> bool:
        c = counts(ch, db, "frame")
        return c.events == 5 and c.dead_letters == 2

    assert wait_until(done, 90, pipeline=pipeline), counts(ch, db, "frame")
    rows = ch.query(
        f"SELECT item, error_type, payload_base64 FROM {db}.dead_letters FINAL ORDER BY offset"
    ).result_rows
    assert [(r[0], r[1], base64.b64decode(r[2])) for r in rows] == [
        (2, "invalid_record", lines[2]),
        (0, "empty", b""),
    ]


def test_a_storm_of_unreadable_records_is_dead_lettered_and_stops_nothing(
    pipeline_factory: Any,
) -> None:
    """Bytes with no readable project share one quarantine bucket: all dead-lettered, the
    worker keeps running, and a project sending valid events meanwhile lands in full."""
    pipeline = pipeline_factory()
    producer = _producer(pipeline)
    pid = pipeline.workers[0].pid
    for i in range(400):
        producer.send_bytes(pipeline.settings.topics.actions, f"k{i}".encode(), b"\x00garbage")
        if i % 4 == 0:
            producer.send(
                ActionEvent(project="ok", event_id=f"ok-{i}", name="t", kind=ActionKind.TOOL_CALL)
            )
    assert producer.close() == 0
    db, ch = pipeline.settings.database, pipeline.clickhouse

    def done() -> bool:
        c = counts(ch, db, "ok")
        return c.events == 100 and c.dead_letters == 400

    assert wait_until(done, 90, pipeline=pipeline), counts(ch, db, "ok")
    assert pipeline.workers[0].alive() and pipeline.workers[0].pid == pid

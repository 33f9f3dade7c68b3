"""Merged trajectory state that outgrows a Kafka message (issue 21, item 5).

Ten valid trajectory records of ~0.95 MB for one trace, each with a distinct metadata key,
used to merge into a state over the 8 MiB output limit: the worker crashed on the produce
and again on every replay, and no other project's events landed. Tansu stores a topic's
``max.message.bytes`` but does not enforce it, so these tests check every message the
worker wrote against its topic's limit with Kafka's rule (``meterline.stream_processors.sizes``).
"""

from __future__ import annotations

import json
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

from meterline.demo.report import counts
from meterline.schemas import ActionEvent, TrajectoryRecord, encode
from meterline.stream_processors.config import changelog_topics
from meterline.stream_processors.sizes import (
    KAFKA_DEFAULT_MAX_MESSAGE_BYTES,
    batch_bytes,
    read_limits,
)
from tests.fixtures import wait_until

RECORD_BYTES = 950_000


def _heavy_trajectories(n: int = 10) -> list[bytes]:
    out = []
    for i in range(n):
        base = TrajectoryRecord(project="heavy", trace_id="big", user_id="u1",
                                metadata={f"k{i}": ""})  # fmt: skip
        room = RECORD_BYTES - len(encode(base))
        record = base.model_copy(update={"metadata": {f"k{i}": str(i) * room}})
        raw = encode(record)
        assert RECORD_BYTES - 10 < len(raw) < 1_000_000
        out.append(raw)
    return out


def _produce(bootstrap: str, items: list[tuple[str, bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 4_000_000})
    for topic, key, value in items:
        producer.produce(topic, value, key=key)
        producer.poll(0)
    assert producer.flush(60) == 0


def _oversized_messages(bootstrap: str, topics: list[str], partitions: int) -> list[str]:
    """Every message in ``topics`` whose record batch would exceed its topic's limit."""
    limits = read_limits(AdminClient({"bootstrap.servers": bootstrap}), topics,
                         KAFKA_DEFAULT_MAX_MESSAGE_BYTES)  # fmt: skip
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": "size-audit", "enable.auto.commit": False,
        "fetch.max.bytes": 64_000_000, "max.partition.fetch.bytes": 64_000_000,
        "receive.message.max.bytes": 80_000_000,
    })  # fmt: skip
    over: list[str] = []
    seen = 0
    try:
        for topic in topics:
            for p in range(partitions):
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                if high <= low:
                    continue
                consumer.assign([TopicPartition(topic, p, low)])
                offset = low
                while offset < high:
                    msg = consumer.poll(10)
                    assert msg is not None, f"{topic}[{p}] stopped at {offset} of {high}"
                    if msg.error():
                        continue
                    offset = msg.offset() + 1
                    seen += 1
                    size = batch_bytes(msg.key(), msg.value(), msg.headers())
                    if size > limits[topic]:
                        over.append(f"{topic}[{p}]@{offset}: {size} > {limits[topic]}")
    finally:
        consumer.close()
    assert seen > 0
    return over


def _run_scenario(p: Any) -> None:
    assert p.settings.kafka_bootstrap
    topics = p.settings.topics
    db = p.settings.database
    heavy = [(topics.trajectories, b"big", raw) for raw in _heavy_trajectories()]
    _produce(p.settings.kafka_bootstrap, heavy)
    others = [
        ActionEvent(project="other", event_id=f"o{i}", trace_id=f"t{i % 6}", name="step")
        for i in range(60)
    ]
    # give the worker the heavy records first: the bystanders come after them
    assert wait_until(lambda: counts(p.clickhouse, db, "heavy").trajectories == 1, 120,
                      pipeline=p)  # fmt: skip
    _produce(p.settings.kafka_bootstrap,
             [(topics.actions, e.trace_id.encode(), encode(e)) for e in others])  # fmt: skip
    assert wait_until(lambda: counts(p.clickhouse, db, "other").events == 60, 120, pipeline=p), (
        counts(p.clickhouse, db, "other")
    )


def _final_metadata(p: Any) -> dict[str, Any]:
    db = p.settings.database

    def latest() -> int:
        rows = p.clickhouse.query(
            f"SELECT max(version) FROM {db}.trajectories WHERE project = 'heavy'"
        ).result_rows
        return int(rows[0][0] or 0)

    assert wait_until(lambda: latest() >= 10, 60, pipeline=p), latest()
    ((raw,),) = p.clickhouse.query(
        f"SELECT metadata FROM {db}.trajectories FINAL WHERE project = 'heavy'"
    ).result_rows
    return dict(json.loads(raw))


def _written_topics(p: Any) -> list[str]:
    topics = p.settings.topics
    return [*topics.sink_inputs, *changelog_topics(p.settings.app_id)[:3]]


def test_ten_large_trajectory_records_neither_crash_the_worker_nor_stop_other_projects(
    pipeline_factory: Any,
) -> None:
    p = pipeline_factory(join_grace_s=0.0)
    _run_scenario(p)
    metadata = _final_metadata(p)
    # the first record's key is kept; the nine others would cross the 1,000,000-byte bound
    assert sorted(metadata) == ["k0", "meterline_metadata_truncated"], sorted(metadata)[:5]
    assert metadata["meterline_metadata_truncated"] == 9
    p.check()  # the worker is alive
    assert p.settings.kafka_bootstrap
    assert _oversized_messages(p.settings.kafka_bootstrap, _written_topics(p),
                               p.settings.partitions) == []  # fmt: skip


def test_with_kafkas_default_topic_limit_an_output_too_large_is_dead_lettered(
    pipeline_factory: Any,
) -> None:
    """Every topic at Kafka's default ``max.message.bytes`` (1,048,588): the state still fits
    (bounded), an event of that trace whose enriched output (event + trajectory) would not
    fit is dead-lettered ``output_too_large``, and the worker goes on."""
    p = pipeline_factory(join_grace_s=0.0, max_message_bytes=KAFKA_DEFAULT_MAX_MESSAGE_BYTES)
    assert p.settings.kafka_bootstrap
    topics = p.settings.topics
    big_event = ActionEvent(project="heavy", event_id="wide", trace_id="big", name="n",
                            properties={"blob": "z" * 200_000})  # fmt: skip
    small_event = ActionEvent(project="heavy", event_id="narrow", trace_id="big", name="n")
    _run_scenario(p)
    _produce(p.settings.kafka_bootstrap, [
        (topics.actions, b"big", encode(big_event)), (topics.actions, b"big", encode(small_event)),
    ])  # fmt: skip
    db = p.settings.database

    def letters() -> list[tuple[str, str]]:
        rows = p.clickhouse.query(
            f"SELECT error_type, reason FROM {db}.dead_letters FINAL"
        ).result_rows
        return [(str(t), str(r)) for t, r in rows]

    assert wait_until(lambda: len(letters()) == 1, 90, pipeline=p), letters()
    ((error_type, reason),) = letters()
    assert error_type == "output_too_large"
    assert "max.message.bytes of 1,048,588" in reason, reason
    # the small event of the same trace lands joined; the wide one is not in events
    assert wait_until(lambda: counts(p.clickhouse, db, "heavy").events == 1, 60, pipeline=p)
    assert counts(p.clickhouse, db, "heavy").joined == 1
    assert _final_metadata(p)["meterline_metadata_truncated"] == 9
    p.check()
    assert _oversized_messages(p.settings.kafka_bootstrap, _written_topics(p),
                               p.settings.partitions) == []  # fmt: skip

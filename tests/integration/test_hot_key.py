"""A hot key: one trace_id producing a burst on one partition must not hold back the other
partitions. Events of other traces, produced *after* the burst, reach ClickHouse while the
hot partition is still catching up."""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message, Producer

from producers import DEFAULT_CONFIG
from schemas import ActionEvent, TrajectoryRecord, encode
from tests.fixtures import wait_until

pytestmark = pytest.mark.integration

HOT = 20_000


def produce(bootstrap: str, topic: str, events: list[ActionEvent]) -> dict[str, int]:
    """Produce keyed by trace_id with the SDK's partitioner; return event_id -> partition."""
    producer = Producer({**DEFAULT_CONFIG, "bootstrap.servers": bootstrap})
    partitions: dict[str, int] = {}

    def report(err: KafkaError | None, msg: Message) -> None:
        assert err is None, err
        partitions[ActionEvent.model_validate_json(msg.value() or b"").event_id] = int(
            msg.partition() or 0
        )

    for ev in events:
        while True:
            try:
                producer.produce(topic, encode(ev), key=ev.routing_key, on_delivery=report)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(60) == 0
    return partitions


def hot_burst(p: Any, *, trajectory_first: bool) -> None:
    assert p.settings.kafka_bootstrap
    topic, db = p.settings.topics.actions, p.settings.database
    if trajectory_first:
        producer = Producer({**DEFAULT_CONFIG, "bootstrap.servers": p.settings.kafka_bootstrap})
        traj = TrajectoryRecord(project="hot", trace_id="hot", user_id="u")
        producer.produce(p.settings.topics.trajectories, encode(traj), key="hot")
        assert producer.flush(30) == 0
    hot = [
        ActionEvent(project="hot", event_id=f"h{i}", trace_id="hot", name="t") for i in range(HOT)
    ]
    cold = [
        ActionEvent(project="hot", event_id=f"c{i}", trace_id=f"cold-{i}", name="t")
        for i in range(200)
    ]
    hot_partition = produce(p.settings.kafka_bootstrap, topic, hot)["h0"]
    placed = produce(p.settings.kafka_bootstrap, topic, cold)  # after the whole burst
    others = {e for e, part in placed.items() if part != hot_partition}
    assert len(others) > 50  # the cold traces spread over the other partitions

    def stored() -> tuple[int, int]:
        ((h, c),) = p.clickhouse.query(
            f"SELECT countIf(startsWith(event_id, 'h')), "
            f"countIf(event_id IN %(others)s) FROM {db}.events WHERE project = 'hot'",
            parameters={"others": sorted(others)},
        ).result_rows
        return int(h), int(c)

    start = time.monotonic()
    assert wait_until(lambda: stored()[1] == len(others), 60, pipeline=p, interval_s=0.1)
    cold_done, hot_then = time.monotonic() - start, stored()[0]
    assert wait_until(lambda: stored()[0] == HOT, 120, pipeline=p)
    hot_done = time.monotonic() - start
    # the other partitions were served while the hot one was still catching up
    assert hot_then < HOT, (
        f"other partitions' events landed only after the whole burst "
        f"({cold_done:.1f}s vs {hot_done:.1f}s)"
    )
    print(f"cold done at {cold_done:.1f}s with {hot_then}/{HOT} hot; hot done at {hot_done:.1f}s")


def test_a_hot_trace_does_not_stall_other_partitions(pipeline_factory: Any) -> None:
    """The hot trace's trajectory is known, so its events join without parking."""
    hot_burst(pipeline_factory(), trajectory_first=True)


def test_a_hot_trace_sent_before_its_trajectory_does_not_stall_other_partitions(
    pipeline_factory: Any,
) -> None:
    """The hot trace's trajectory never comes: its events are parked, one changelog record
    each (10,000, the per-trace limit), the rest go out unjoined at once, and the parked ones
    go out unjoined after the grace period. No record outgrows a Kafka message, so nothing
    crash-loops and the other partitions are served meanwhile."""
    hot_burst(pipeline_factory(), trajectory_first=False)

"""Framed batches on a real broker: each record lands where librdkafka would put it alone."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from meterline.ops.admin import ensure_topics
from meterline.producers import BatchConfig, MeterlineProducer
from meterline.producers.partitioner import partition_for
from meterline.schemas import ActionEvent, ActionKind, Topics, framing

pytestmark = pytest.mark.integration


def test_framed_records_land_on_the_partition_librdkafka_picks_for_their_key(tansu: Any) -> None:
    topics = Topics(f"frame{uuid.uuid4().hex[:8]}")
    ensure_topics(tansu.bootstrap, topics.raw, 5)
    keys = [f"trace-{i}".encode() for i in range(200)]

    # where librdkafka's murmur2_random puts each key on its own
    plain = Producer({"bootstrap.servers": tansu.bootstrap, "partitioner": "murmur2_random"})
    placed: dict[bytes, int] = {}

    def on_delivery(err: Any, msg: Any) -> None:
        assert err is None
        placed[msg.key()] = msg.partition()

    for k in keys:
        plain.produce(topics.telemetry, key=k, value=b"{}", on_delivery=on_delivery)
    assert plain.flush(30) == 0
    assert all(placed[k] == partition_for(k, 5) for k in keys)

    delivered: list[Any] = []
    producer = MeterlineProducer(
        tansu.bootstrap, topics=topics, batching=BatchConfig(max_records=50, linger_s=0.05),
        on_delivery=lambda rec, err: delivered.append((rec, err)),
    )
    events = [
        ActionEvent(project="f", event_id=f"e{i}", trace_id=k.decode(), name="x",
                    kind=ActionKind.TOOL_CALL)
        for i, k in enumerate(keys * 3)
    ]
    producer.send_many(events)
    assert producer.close() == 0
    assert len(delivered) == len(events) and all(err is None for _, err in delivered)
    assert producer.stats.delivered == len(events)

    c = Consumer({"bootstrap.servers": tansu.bootstrap, "group.id": "frame-check"})
    c.assign([TopicPartition(topics.actions, p, 0) for p in range(5)])
    seen, messages = 0, 0
    while seen < len(events):
        batch = c.consume(500, 5.0)
        assert batch, f"only {seen} of {len(events)} records read back"
        for m in batch:
            assert m.error() is None and framing.is_batch(m.headers())
            messages += 1
            for line in framing.split(m.value()):
                ev = ActionEvent.model_validate_json(line)
                assert partition_for(ev.trace_id.encode(), 5) == m.partition()  # type: ignore[union-attr]
                seen += 1
    c.close()
    assert seen == len(events) and messages < len(events) / 5


def test_a_batch_reports_delivery_to_every_record_with_or_without_its_own_callback(
    tansu: Any,
) -> None:
    topics = Topics(f"count{uuid.uuid4().hex[:8]}")
    ensure_topics(tansu.bootstrap, topics.raw, 2)
    producer = MeterlineProducer(
        tansu.bootstrap, topics=topics, batching=BatchConfig(max_records=40, linger_s=0.05)
    )
    called: list[Any] = []
    for i in range(100):
        ev = ActionEvent(project="f", event_id=f"c{i}", trace_id=f"t{i % 7}", name="x",
                         kind=ActionKind.TOOL_CALL)  # fmt: skip
        if i % 10:
            producer.send(ev)  # counted with its batch, no callback of its own
        else:
            producer.send(ev, on_delivery=lambda rec, err: called.append((rec.event_id, err)))
    assert producer.close() == 0
    assert producer.stats.enqueued == producer.stats.delivered == 100
    assert producer.stats.failed == 0
    assert sorted(called) == sorted((f"c{i}", None) for i in range(0, 100, 10))


def test_a_batch_librdkafka_refuses_on_the_ticker_is_counted_failed(tansu: Any) -> None:
    """produce() raising KafkaException (here MSG_SIZE_TOO_LARGE) on the background ticker
    used to drop the whole batch uncounted."""
    import time

    topics = Topics(f"refuse{uuid.uuid4().hex[:8]}")
    ensure_topics(tansu.bootstrap, topics.raw, 1)
    errors: list[Any] = []
    producer = MeterlineProducer(
        tansu.bootstrap, topics=topics, config={"message.max.bytes": 2000},
        batching=BatchConfig(max_records=500, linger_s=0.05),
        on_delivery=lambda rec, err: errors.append(err),
    )
    for i in range(20):
        producer.send(ActionEvent(project="f", event_id=f"e{i}", trace_id="t", name="x" * 200))
    time.sleep(1.0)  # the ticker produces the due batch
    producer.close(10)
    assert producer.stats.failed == 20 and producer.stats.delivered == 0
    assert len(errors) == 20 and all(err is not None for err in errors)

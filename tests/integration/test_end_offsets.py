"""End offsets on real Tansu: what the broker reports, and what the probe finds."""

from __future__ import annotations

from typing import Any

import pytest

from meterline.stream_processors.faust_layer.end_offsets import first_offset_from, true_end_offsets

pytestmark = pytest.mark.integration


def _three_batches(p: Any, topic: str) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": p.settings.kafka_bootstrap, "linger.ms": 50})
    for _ in range(3):  # three record batches of 100
        for i in range(100):
            producer.produce(topic, value=b"x%d" % i, key=b"k", partition=0)
        assert producer.flush(10) == 0


def test_tansu_reports_the_last_batch_base_offset_as_highwater(pipeline_factory: Any) -> None:
    """The broker bug the probe works around. When this fails, Tansu reports true end
    offsets: the probe becomes a no-op and the rebalance test can require every event joined."""
    from confluent_kafka import Consumer, TopicPartition

    p = pipeline_factory(workers=0, sink=False)
    topic = p.settings.topics.enriched
    _three_batches(p, topic)
    consumer = Consumer({"bootstrap.servers": p.settings.kafka_bootstrap, "group.id": "hw"})
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
    finally:
        consumer.close()
    assert high == 201  # Kafka would say 300 (last offset + 1): the last batch starts at 200


def test_the_probe_finds_the_true_end_of_each_partition(pipeline_factory: Any) -> None:
    from faust.types import TP

    p = pipeline_factory(workers=0, sink=False)
    topic = p.settings.topics.enriched
    _three_batches(p, topic)
    config = {"bootstrap.servers": p.settings.kafka_bootstrap}
    reported = {TP(topic, 0): 201, TP(topic, 1): 0, TP(topic, 2): None}
    assert true_end_offsets(config, reported) == {
        TP(topic, 0): 300,  # the last batch read to its end
        TP(topic, 1): 0,  # an empty partition stays empty
        TP(topic, 2): None,  # nothing reported: nothing probed
    }
    # a true figure is kept as it is (what the probe does on Kafka)
    assert true_end_offsets(config, {TP(topic, 0): 300}) == {TP(topic, 0): 300}


def test_the_first_offset_probe_reads_the_log_from_an_offset(pipeline_factory: Any) -> None:
    """What a held commit is resolved with (stream_processors/faust_layer/commits.py): the record
    at the held offset is there (re-read), or the first one after it (a gap)."""
    p = pipeline_factory(workers=0, sink=False)
    topic = p.settings.topics.enriched
    _three_batches(p, topic)
    config = {"bootstrap.servers": p.settings.kafka_bootstrap}
    assert first_offset_from(config, topic, 0, 0) == 0
    assert first_offset_from(config, topic, 0, 150) == 150  # inside a batch
    assert first_offset_from(config, topic, 0, 299) == 299
    assert first_offset_from(config, topic, 0, 300, timeout_s=5) is None  # nothing yet

"""The sink on real Tansu + chDB: a message it cannot decode becomes a dead-letter row
(``stage = 'sink'``, with its reason) and holds nothing else up."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from schemas.codec import encode_enriched
from sinks.consumer import ClickHouseSink
from stream_processors.admin import ensure_topics
from stream_processors.services import clickhouse_writer
from stream_processors.settings import Settings
from tests.fixtures import wait_until

pytestmark = pytest.mark.integration

EVENT = {"type": "action", "event_id": "x", "name": "n", "timestamp": "2026-11-01T00:00:05Z"}


def enriched(event: dict[str, Any]) -> bytes:
    return encode_enriched(orjson.dumps(event), None, 1, b'"2026-11-27T20:59:29.262152Z"')


def test_undecodable_messages_are_dead_lettered_and_the_rest_lands(
    settings: Settings, clickhouse: Any
) -> None:
    assert settings.kafka_bootstrap
    topics = settings.topics
    ensure_topics(settings.kafka_bootstrap, topics.sink_inputs, settings.partitions)
    messages = [
        enriched({**EVENT, "event_id": "iso"}),
        enriched({**EVENT, "event_id": "epoch", "timestamp": 1_793_491_207}),
        enriched({**EVENT, "event_id": "feb-30", "timestamp": "2026-02-30T00:00:00Z"}),
        b"not json at all",
    ]
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    for value in messages:
        producer.produce(topics.enriched, value, key=b"k")
    assert producer.flush(30) == 0

    writer = clickhouse_writer(settings, clickhouse)
    sink = ClickHouseSink(settings.kafka_bootstrap, topics, writer, group_id=settings.sink_group)
    db = settings.database
    try:
        assert wait_until(lambda: sink.poll_once() == 0 and sink.stats.batches > 0, 60)
    finally:
        sink.close()
    events = clickhouse.query(f"SELECT event_id FROM {db}.events ORDER BY event_id").result_rows
    assert events == [("epoch",), ("iso",)]
    letters = clickhouse.query(
        f"SELECT error_type, stage, payload_preview, reason FROM {db}.dead_letters ORDER BY offset"
    ).result_rows
    kinds = [(t, s) for t, s, _, _ in letters]
    assert kinds == [("invalid_record", "sink"), ("invalid_json", "sink")]
    assert "feb-30" in letters[0][2] and "timestamp" in letters[0][3]
    assert letters[1][2] == "not json at all"
    assert sink.stats.undecodable == 2 and sink.stats.write_failures == 0

"""The sink on real Tansu + chDB: direct lines, the general way, and the fallback when
ClickHouse refuses a direct line (the batch is re-decoded; the bad record is dead-lettered,
the others land)."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import Producer

from schemas import EnrichedEvent, InvalidRecord, decode_as
from sinks.consumer import ClickHouseSink
from stream_processors.admin import ensure_topics
from stream_processors.services import clickhouse_writer
from stream_processors.settings import Settings
from tests.fixtures import wait_until
from tests.sinks.test_lines import MINIMAL, enriched

pytestmark = pytest.mark.integration


def test_a_direct_line_clickhouse_refuses_is_dead_lettered_and_the_rest_lands(
    settings: Settings, clickhouse: Any
) -> None:
    assert settings.kafka_bootstrap
    topics = settings.topics
    ensure_topics(settings.kafka_bootstrap, topics.sink_inputs, settings.partitions)
    feb_30 = enriched({**MINIMAL, "event_id": "feb-30", "timestamp": "2026-02-30T00:00:00Z"}, None)
    messages = [
        enriched({**MINIMAL, "event_id": "direct"}, None),
        enriched({**MINIMAL, "event_id": "epoch", "timestamp": 1_793_491_207}, None),  # general
        feb_30,  # the direct reader takes it; ClickHouse refuses the date; pydantic too
        b"not json at all",  # neither way: dead letter
    ]
    with pytest.raises(InvalidRecord):
        decode_as(EnrichedEvent, feb_30)
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    for value in messages:
        producer.produce(topics.enriched, value, key=b"k")  # one partition: one batch
    assert producer.flush(30) == 0

    writer = clickhouse_writer(settings, clickhouse)
    sink = ClickHouseSink(
        settings.kafka_bootstrap, topics, writer, group_id=settings.sink_group,
        retry_backoff_s=(0.01, 0.01),
    )  # fmt: skip
    db = settings.database
    try:
        assert wait_until(lambda: sink.poll_once() == 0 and sink.stats.batches > 0, 60)
    finally:
        sink.close()
    events = clickhouse.query(f"SELECT event_id FROM {db}.events ORDER BY event_id").result_rows
    assert events == [("direct",), ("epoch",)]
    letters = clickhouse.query(
        f"SELECT error_type, stage, payload_preview FROM {db}.dead_letters ORDER BY offset"
    ).result_rows
    assert [(t, s) for t, s, _ in letters] == [("invalid_record", "sink"), ("invalid_json", "sink")]
    assert "feb-30" in letters[0][2] and letters[1][2] == "not json at all"
    assert sink.stats.fallbacks == 1 and sink.stats.write_failures == 0

"""A processor/sink version skew on real Tansu + chDB (issue 21, item 4, the sink's part):
records of a newer ``schema_version`` than the sink reads are held, not dead-lettered: the
rows before them land, the partition is committed up to them and paused, readiness and a
metric say so, other partitions keep flowing, and a sink that can read them (deployed
later, same group) writes them and what followed. A lone malformed record among decodable
ones is still dead-lettered."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from meterline.schemas import framing
from meterline.settings import Settings
from meterline.sinks.clickhouse.rows import enriched_row
from meterline.sinks.consumer import ClickHouseSink
from tests.fixtures import committed_offsets, wait_until
from tests.sinks.test_consumer import EVENT, enriched, sink_for

pytestmark = pytest.mark.integration


def newer(event_id: str) -> bytes:
    """An enriched event as a newer processor writes it (schema_version 2)."""
    return enriched({**EVENT, "event_id": event_id}).replace(
        b'"schema_version":1', b'"schema_version":2', 1
    )


def produce(settings: Settings, key: bytes, values: list[bytes], headers: Any = None) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    for value in values:
        producer.produce(settings.topics.enriched, value, key=key, headers=headers)
    assert producer.flush(30) == 0


def newer_sink(settings: Settings, clickhouse: Any) -> ClickHouseSink:
    """Stands in for a sink release that reads schema_version 2 (here: as version 1)."""
    sink = sink_for(settings, clickhouse)
    sink._decoders[settings.topics.enriched] = lambda v: (
        "events", enriched_row(v.replace(b'"schema_version":2', b'"schema_version":1'))
    )  # fmt: skip
    return sink


def drain(sink: ClickHouseSink) -> None:
    assert wait_until(lambda: sink.poll_once() == 0 and sink.stats.batches > 0, 60)
    for _ in range(5):  # a few more empty polls: every partition fetched
        sink.poll_once()


def test_records_of_a_newer_processor_are_held_reported_and_written_by_a_newer_sink(
    settings: Settings, clickhouse: Any
) -> None:
    db = settings.database
    held_key, other_key = b"trace-held", b"trace-other"
    held = [enriched({**EVENT, "event_id": f"h{i}"}) for i in range(10)]
    held += [newer("skew-1")]
    held += [enriched({**EVENT, "event_id": f"h{i}"}) for i in range(10, 20)]
    other = [enriched({**EVENT, "event_id": f"o{i}"}) for i in range(10)] + [b"not json"]

    old = sink_for(settings, clickhouse)
    produce(settings, held_key, held)
    produce(settings, other_key, other)
    try:
        drain(old)
        ids = {r[0] for r in clickhouse.query(f"SELECT event_id FROM {db}.events").result_rows}
        assert ids == {f"h{i}" for i in range(10)} | {f"o{i}" for i in range(10)}
        letters = clickhouse.query(f"SELECT error_type FROM {db}.dead_letters").result_rows
        assert letters == [("invalid_json",)]  # the lone malformed record; not the skew
        assert old.held is not None and "schema_version: 2" in old.held, old.held
        gauge = old.metrics.registry.get_sample_value("meterline_sink_held_partitions")
        assert gauge == 1
        assert old.stats.held == 11  # the newer record and the ten after it
    finally:
        old.close()
    offsets = committed_offsets(
        settings.kafka_bootstrap or "", settings.sink_group, [settings.topics.enriched],
        settings.partitions,
    )  # fmt: skip
    assert sorted(o for o in offsets.values() if o >= 0) == [10, 11]  # held at the newer one

    new = newer_sink(settings, clickhouse)
    try:
        drain(new)
        assert new.held is None
    finally:
        new.close()
    ((rows, distinct),) = clickhouse.query(
        f"SELECT count(), uniqExact(event_id) FROM {db}.events"
    ).result_rows
    assert (rows, distinct) == (31, 31)  # each once: 20 + 10 + the newer one
    assert len(clickhouse.query(f"SELECT * FROM {db}.dead_letters").result_rows) == 1


def test_an_undecodable_storm_is_held_not_dead_lettered(
    settings: Settings, clickhouse: Any
) -> None:
    """Records a sink cannot read although they declare its schema_version (a field a newer
    processor added): more than half of the last records undecodable holds them."""
    unknown = [orjson.loads(enriched({**EVENT, "event_id": f"u{i}"})) for i in range(150)]
    values = [orjson.dumps({**u, "added_later": 1}) for u in unknown]
    sink = sink_for(settings, clickhouse)
    batches = [framing.join(values[:75]), framing.join(values[75:])]
    produce(settings, b"k", batches, headers=framing.BATCH_HEADERS)
    try:
        drain(sink)
        assert sink.held is not None and "undecodable" in sink.held
    finally:
        sink.close()
    db = settings.database
    assert clickhouse.query(f"SELECT count() FROM {db}.dead_letters").result_rows == [(0,)]

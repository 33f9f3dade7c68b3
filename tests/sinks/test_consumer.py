"""The sink on real Tansu + chDB: a message it cannot decode, or whose row ClickHouse refuses,
becomes a dead-letter row (``stage = 'sink'``, with its reason) and holds nothing else up."""

from __future__ import annotations

import base64
import threading
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from meterline.ops.admin import ensure_topics
from meterline.schemas import DeadLetter, encode
from meterline.schemas.codec import encode_enriched
from meterline.settings import Settings
from meterline.sinks.consumer import ClickHouseSink
from meterline.sinks.service import clickhouse_writer
from tests.fixtures import wait_until

pytestmark = pytest.mark.integration

EVENT = {"type": "action", "event_id": "x", "name": "n", "timestamp": "2026-11-01T00:00:05Z"}


def enriched(event: dict[str, Any]) -> bytes:
    return encode_enriched(orjson.dumps(event), None, 1, b'"2026-11-27T20:59:29.262152Z"')


def send(settings: Settings, messages: list[tuple[str, bytes]]) -> None:
    assert settings.kafka_bootstrap
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    for topic, value in messages:
        producer.produce(topic, value, key=b"k")
    assert producer.flush(30) == 0


def sink_for(settings: Settings, clickhouse: Any, **kwargs: Any) -> ClickHouseSink:
    """A sink on the test's topics (created first: a subscription to a missing topic waits
    for librdkafka's next metadata refresh) and database (schema created)."""
    assert settings.kafka_bootstrap
    ensure_topics(settings.kafka_bootstrap, settings.topics.sink_inputs, settings.partitions)
    writer = clickhouse_writer(settings.sink_config(), clickhouse)
    return ClickHouseSink(
        settings.kafka_bootstrap, settings.topics, writer, group_id=settings.sink_group, **kwargs
    )


def test_undecodable_messages_are_dead_lettered_and_the_rest_lands(
    settings: Settings, clickhouse: Any
) -> None:
    messages = [
        enriched({**EVENT, "event_id": "iso"}),
        enriched({**EVENT, "event_id": "epoch", "timestamp": 1_793_491_207}),
        enriched({**EVENT, "event_id": "feb-30", "timestamp": "2026-02-30T00:00:00Z"}),
        b"not json at all",
    ]
    sink = sink_for(settings, clickhouse)
    send(settings, [(settings.topics.enriched, value) for value in messages])
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


def llm_call(event_id: str, cost: float) -> bytes:
    return enriched(
        {**EVENT, "event_id": event_id, "kind": "llm_call", "model": "m", "cost_usd": cost}
    )


def test_rows_clickhouse_refuses_are_dead_lettered_and_the_rest_lands(
    settings: Settings, clickhouse: Any
) -> None:
    """Rows that pass validation but not ClickHouse (here: CHECK constraints an operator
    added) are found by halving the batch and dead-lettered with the original message; a
    dead letter ClickHouse refuses is replaced by the sink's own."""
    db, topics = settings.database, settings.topics
    sink = sink_for(settings, clickhouse)
    clickhouse.command(f"ALTER TABLE {db}.events ADD CONSTRAINT small_cost CHECK cost_usd < 100")
    clickhouse.command(f"ALTER TABLE {db}.dead_letters ADD CONSTRAINT known CHECK stage != 'x'")
    refused = llm_call("costly", 1_000)
    letter = DeadLetter(
        source_topic="raw", partition=0, offset=7, payload=b"{}", reason="r", stage="x"
    )
    send(
        settings,
        [(topics.enriched, llm_call(f"ok-{i}", 0.5)) for i in range(5)]
        + [(topics.enriched, refused), (topics.dead_letters, encode(letter))],
    )
    try:
        assert wait_until(lambda: sink.poll_once() == 0 and sink.stats.batches > 0, 60)
    finally:
        sink.close()
    events = clickhouse.query(f"SELECT event_id FROM {db}.event_facts ORDER BY event_id")
    assert events.result_rows == [(f"ok-{i}",) for i in range(5)]
    letters = clickhouse.query(
        f"SELECT source_topic, payload_base64, error_type, stage, reason FROM {db}.dead_letters"
        " ORDER BY source_topic"
    ).result_rows
    assert [(t, e, s) for t, _, e, s, _ in letters] == [
        (topics.dead_letters, "rejected_by_clickhouse", "sink"),
        (topics.enriched, "rejected_by_clickhouse", "sink"),
    ]
    assert base64.b64decode(letters[1][1]) == refused  # the original message, byte for byte
    assert "small_cost" in letters[1][4] and "for events" in letters[1][4]
    assert "for dead_letters" in letters[0][4]
    assert sink.stats.rejected == 2 and sink.stats.write_failures == 0


@pytest.mark.parametrize(
    ("max_rejected", "costs", "message"),
    [
        (2, [0.5, 1_000, 1_000, 0.5, 1_000], "refused more than 2 of 5 rows"),
        (10_000, [0.5] * 30 + [1_000] * 100, "refused 100 of the last 130 rows"),
    ],
    ids=["over-max_rejected", "most-recent-rows-refused"],
)
def test_a_storm_of_refused_rows_holds_the_batch_until_clickhouse_accepts_it(
    settings: Settings, clickhouse: Any, max_rejected: int, costs: list[float], message: str
) -> None:
    """More refusals in a batch than ``max_rejected``, or most of the recent rows refused,
    look systemic: nothing is dead-lettered or committed, the batch is retried, and it lands
    whole once ClickHouse takes it."""
    db = settings.database
    # all rows in one batch: a first poll of 0.5 s could end while the group is still being
    # joined, with only the first fetch in (a batch under the limits)
    sink = sink_for(
        settings, clickhouse, max_rejected=max_rejected, retry_backoff_s=(1.0, 1.0),
        batch_timeout_s=2.0,
    )  # fmt: skip
    clickhouse.command(f"ALTER TABLE {db}.events ADD CONSTRAINT small_cost CHECK cost_usd < 100")
    send(settings, [(settings.topics.enriched, llm_call(f"e{i}", c)) for i, c in enumerate(costs)])
    stop = threading.Event()
    runner = threading.Thread(target=sink.run, args=(stop,))
    runner.start()
    try:
        assert wait_until(lambda: sink.stats.write_failures >= 2, 60)
        assert message in (sink.insert_error or "")
        assert sink.stats.rows["events"] == 0 and sink.stats.rejected == 0
        # between two retries (1 s apart): dropped while a retry was isolating rows, the
        # constraint would refuse only the rows tried before, under the limits (flaky)
        failures = sink.stats.write_failures
        assert wait_until(lambda: sink.stats.write_failures > failures, 60, interval_s=0.05)
        clickhouse.command(f"ALTER TABLE {db}.events DROP CONSTRAINT small_cost")
        assert wait_until(lambda: sink.stats.rows["events"] == len(costs), 60)
    finally:
        stop.set()
        runner.join(30)
    count = clickhouse.query(f"SELECT count() FROM {db}.event_facts FINAL").result_rows
    assert count == [(len(costs),)]
    assert clickhouse.query(f"SELECT count() FROM {db}.dead_letters").result_rows == [(0,)]
    assert sink.insert_error is None


def test_an_unexpected_error_decoding_a_message_dead_letters_it_instead_of_crashing(
    settings: Settings, clickhouse: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in the sink's decoding or row mapping (injected: ``event_row`` raising for one
    event) costs that message a dead letter (``unexpected_error``), not a crash-looping sink."""
    import meterline.sinks.clickhouse.rows

    real = meterline.sinks.clickhouse.rows.event_row

    def buggy(enriched: Any) -> tuple[Any, ...]:
        if enriched.event.event_id == "bug":
            raise KeyError("surprise")
        return real(enriched)

    monkeypatch.setattr(meterline.sinks.clickhouse.rows, "event_row", buggy)
    sink = sink_for(settings, clickhouse)
    send(settings, [(settings.topics.enriched, enriched({**EVENT, "event_id": i})) for i in "ab"])
    send(settings, [(settings.topics.enriched, enriched({**EVENT, "event_id": "bug"}))])
    db = settings.database
    try:
        assert wait_until(lambda: sink.poll_once() == 0 and sink.stats.rows["events"] == 2, 60)
    finally:
        sink.close()
    letters = clickhouse.query(f"SELECT error_type, stage, reason FROM {db}.dead_letters")
    assert letters.result_rows == [
        ("unexpected_error", "sink", "unexpected KeyError while decoding: 'surprise'")
    ]


def test_a_batch_message_is_split_and_each_bad_record_is_dead_lettered_with_its_item(
    settings: Settings, clickhouse: Any
) -> None:
    """The processor frames its enriched events (NDJSON batch messages): each record is
    decoded and written on its own; a record that does not decode, or whose row ClickHouse
    refuses, becomes a dead letter carrying that record's bytes and its index in the message,
    and the message's other records land."""
    from meterline.schemas.framing import BATCH_HEADERS

    db = settings.database
    sink = sink_for(settings, clickhouse)
    clickhouse.command(f"ALTER TABLE {db}.events ADD CONSTRAINT small_cost CHECK cost_usd < 100")
    lines = [llm_call("a", 0.5), b'{"not": "an enriched event"}', llm_call("b", 0.5),
             llm_call("costly", 1_000), llm_call("c", 0.5)]  # fmt: skip
    assert settings.kafka_bootstrap
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    producer.produce(settings.topics.enriched, b"\n".join(lines), key=b"k", headers=BATCH_HEADERS)
    producer.produce(settings.topics.enriched, llm_call("single", 0.5), key=b"k")  # unframed
    assert producer.flush(30) == 0
    try:
        assert wait_until(lambda: sink.poll_once() == 0 and sink.stats.batches > 0, 60)
    finally:
        sink.close()
    events = clickhouse.query(f"SELECT event_id FROM {db}.event_facts ORDER BY event_id")
    assert events.result_rows == [("a",), ("b",), ("c",), ("single",)]
    letters = clickhouse.query(
        f"SELECT item, payload_base64, error_type FROM {db}.dead_letters ORDER BY item"
    ).result_rows
    assert [(item, base64.b64decode(payload), kind) for item, payload, kind in letters] == [
        (1, lines[1], "invalid_record"),
        (3, lines[3], "rejected_by_clickhouse"),
    ]
    assert sink.stats.rows["events"] == 4 and sink.stats.rows["dead_letters"] == 2

"""Hostile but valid input stays data, and one project never counts for another."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from meterline.demo.report import by_kind, counts
from meterline.producers import MeterlineProducer
from meterline.schemas import ActionEvent, ActionKind, TelemetryEvent, TrajectoryRecord
from tests.fixtures import wait_until

pytestmark = pytest.mark.integration

INJECTION = "x'); DROP TABLE events; --"


def dead_letters(p: Any) -> dict[bytes, tuple[str, str]]:
    """(error_type, reason) of each dead letter in ClickHouse, by its original bytes."""
    rows = p.clickhouse.query(
        f"SELECT payload_base64, error_type, reason FROM {p.settings.database}.dead_letters FINAL"
    ).result_rows
    return {base64.b64decode(r[0]): (r[1], r[2]) for r in rows}


def test_same_event_ids_in_two_projects_are_two_events(pipeline_factory: Any) -> None:
    p = pipeline_factory()
    assert p.settings.kafka_bootstrap
    producer = MeterlineProducer(p.settings.kafka_bootstrap, topics=p.settings.topics)
    for project in ("tenant-a", "tenant-b"):
        producer.send(TrajectoryRecord(project=project, trace_id="shared-trace", user_id=project))
        for i in range(50):
            producer.send(
                ActionEvent(
                    project=project,
                    event_id=f"e{i}",
                    trace_id="shared-trace",
                    name="tool",
                    kind=ActionKind.TOOL_CALL,
                )
            )
    producer.send(
        ActionEvent(
            project="tenant-a",
            event_id="e0",
            trace_id="shared-trace",
            name="tool",
            kind=ActionKind.TOOL_CALL,
        )
    )  # a real duplicate
    assert producer.close() == 0
    db = p.settings.database

    def done() -> bool:
        return all(counts(p.clickhouse, db, t).joined == 50 for t in ("tenant-a", "tenant-b"))

    assert wait_until(done, 60, pipeline=p)
    rows = p.clickhouse.query(
        f"SELECT project, uniqExact(user_id), any(user_id) FROM {db}.events FINAL "
        "GROUP BY project ORDER BY project"
    ).result_rows
    # each project's events joined to its own trajectory, never the other's
    assert rows == [("tenant-a", 1, "tenant-a"), ("tenant-b", 1, "tenant-b")]


def test_sql_shaped_strings_are_stored_verbatim(pipeline_factory: Any) -> None:
    p = pipeline_factory()
    assert p.settings.kafka_bootstrap
    producer = MeterlineProducer(p.settings.kafka_bootstrap, topics=p.settings.topics)
    producer.send(
        ActionEvent(
            project=INJECTION,
            event_id=INJECTION,
            name=INJECTION,
            properties={INJECTION: INJECTION},
            user_id="u",
        )
    )
    producer.send(TelemetryEvent(project=INJECTION, event_id="t1", event_type=INJECTION))
    assert producer.close() == 0
    db = p.settings.database
    assert wait_until(lambda: counts(p.clickhouse, db, INJECTION).events == 2, 60, pipeline=p)
    assert by_kind(p.clickhouse, db, INJECTION) == [("action", 1), ("telemetry", 1)]
    ((name, props),) = p.clickhouse.query(
        f"SELECT name, properties FROM {db}.events FINAL WHERE event_id = %(e)s",
        parameters={"e": INJECTION},
    ).result_rows
    assert name == INJECTION and INJECTION in props
    assert p.clickhouse.query(f"EXISTS TABLE {db}.events").result_rows == [(1,)]


def test_skewed_clocks_and_bad_ids_are_normalised_or_dead_lettered(pipeline_factory: Any) -> None:
    import json
    from datetime import UTC, datetime, timedelta

    p = pipeline_factory()
    assert p.settings.kafka_bootstrap
    producer = MeterlineProducer(p.settings.kafka_bootstrap, topics=p.settings.topics)
    now = datetime.now(UTC).replace(microsecond=0)
    millis = int(now.timestamp() * 1000)

    def raw(event_id: str, timestamp: object) -> bytes:
        body = {"type": "action", "project": "clock", "event_id": event_id, "name": "t",
                "timestamp": timestamp}
        return json.dumps(body).encode()

    accepted = {
        "epoch-ms": raw("epoch-ms", millis),
        "naive": raw("naive", now.replace(tzinfo=None).isoformat()),
    }
    rejected = {
        raw("future", (now + timedelta(days=30)).isoformat()): "timestamp_out_of_range",
        raw("ancient", 0): "timestamp_out_of_range",
        raw("no\nnewline", millis): "invalid_record",
        b'{"type": "action", "project": "clock", "event_id": "no-time", "name": "t"}': (
            "invalid_record"
        ),
    }
    for value in [*accepted.values(), *rejected]:
        producer.send_bytes(p.settings.topics.actions, b"k", value)
    assert producer.close() == 0
    db = p.settings.database

    def letters() -> dict[str, tuple[str, str]]:
        return {k.decode(): v for k, v in dead_letters(p).items()}

    assert wait_until(
        lambda: counts(p.clickhouse, db, "clock").events == 2 and len(letters()) == 4,
        60,
        pipeline=p,
    )
    times = dict(
        p.clickhouse.query(
            f"SELECT event_id, timestamp FROM {db}.events FINAL WHERE project = 'clock'"
        ).result_rows
    )
    assert {k: v.replace(tzinfo=UTC) if v.tzinfo is None else v for k, v in times.items()} == {
        "epoch-ms": now,
        "naive": now,
    }
    got = letters()
    for value, error_type in rejected.items():  # original bytes kept, reason names the field
        assert got[value.decode()][0] == error_type, got[value.decode()]
    reasons = " | ".join(r for _, r in got.values())
    assert "timestamp: " in reasons and "event_id: must not contain control characters" in reasons


def test_numbers_clickhouse_cannot_store_are_dead_lettered_and_the_sink_keeps_going(
    pipeline_factory: Any,
) -> None:
    """Token counts over UInt64 and infinite or absurd costs once passed validation and then
    failed every insert of the sink's batch (retried forever); an integer beyond 64 bits in
    the properties of an early event crashed the worker on every replay when it was parked
    (orjson cannot write it). Now they are all dead letters."""
    import json
    from datetime import UTC, datetime

    p = pipeline_factory()
    assert p.settings.kafka_bootstrap
    producer = MeterlineProducer(p.settings.kafka_bootstrap, topics=p.settings.topics)
    now = datetime.now(UTC).isoformat()

    def raw(event_id: str, extra: str) -> bytes:
        head = {"type": "action", "project": "big", "event_id": event_id, "name": "t",
                "timestamp": now}  # fmt: skip
        return json.dumps(head).encode()[:-1] + b"," + extra.encode() + b"}"

    accepted = {
        "max-tokens": raw("max-tokens", f'"input_tokens": {2**64 - 1}, "cost_usd": 1e12'),
        "long": raw("long", '"duration_ms": 1e300'),
        "max-int": raw(
            "max-int",
            f'"trace_id": "never", "properties": {{"n": [{2**64 - 1}, {-(2**63)}]}}',
        ),
    }
    rejected = {
        raw("tokens", f'"input_tokens": {2**64}'): "input_tokens",
        raw("cost", '"cost_usd": 1e30'): "cost_usd",
        raw("inf-cost", '"cost_usd": Infinity'): "cost_usd",
        raw("inf-duration", '"duration_ms": Infinity'): "duration_ms",
        raw("big-int", f'"trace_id": "never", "properties": {{"n": [1, {2**64}]}}'): "properties",
    }
    for value in [*rejected, *accepted.values()]:
        producer.send_bytes(p.settings.topics.actions, b"k", value)
    assert producer.close() == 0
    db = p.settings.database

    def letters() -> dict[bytes, tuple[str, str]]:
        return dead_letters(p)

    assert wait_until(
        lambda: counts(p.clickhouse, db, "big").events == 3 and len(letters()) == 5,
        60,
        pipeline=p,
    ), (counts(p.clickhouse, db, "big"), letters())
    for payload, field in rejected.items():
        error_type, reason = letters()[payload]
        assert error_type == "invalid_record" and reason.startswith(field), (payload, reason)
    assert p.sink is not None and p.sink.insert_error is None
    facts = p.clickhouse.query(
        f"SELECT event_id, input_tokens, cost_usd FROM {db}.event_facts FINAL "
        "WHERE project = 'big' ORDER BY event_id"
    ).result_rows
    assert [(e, t, float(c)) for e, t, c in facts] == [
        ("long", 0, 0.0),
        ("max-int", 0, 0.0),
        ("max-tokens", 2**64 - 1, 1e12),
    ]
    props = p.clickhouse.query(
        f"SELECT properties FROM {db}.events FINAL WHERE event_id = 'max-int'"
    ).result_rows
    assert props == [(f'{{"n":[{2**64 - 1},{-(2**63)}]}}',)]


def test_an_event_at_the_size_limit_lands_and_one_over_it_is_dead_lettered(
    pipeline_factory: Any,
) -> None:
    """The processor's limit is 1,000,000 bytes per record. An event just under it goes
    through, joined (its enriched output is larger than the event: the output producer and
    topics allow that); one over it is dead-lettered with reason ``oversized``."""
    from confluent_kafka import Producer

    from meterline.schemas import encode

    p = pipeline_factory()
    assert p.settings.kafka_bootstrap
    topics = p.settings.topics
    traj = TrajectoryRecord(project="big", trace_id="big", user_id="u")
    base = ActionEvent(project="big", event_id="near", trace_id="big", name="n",
                       properties={"blob": ""})  # fmt: skip
    room = 999_000 - len(encode(base))
    near = base.model_copy(update={"properties": {"blob": "x" * room}})
    over = base.model_copy(update={"event_id": "over", "properties": {"blob": "y" * 1_100_000}})
    assert len(encode(near)) < 1_000_000 < len(encode(over))
    producer = Producer({"bootstrap.servers": p.settings.kafka_bootstrap,
                         "message.max.bytes": 4_000_000})  # fmt: skip
    producer.produce(topics.trajectories, encode(traj), key=b"big")
    producer.flush(30)
    db = p.settings.database
    # the trajectory first: an event this large cannot be parked to wait for it
    assert wait_until(lambda: counts(p.clickhouse, db, "big").trajectories == 1, 90, pipeline=p)
    for ev in (near, over):
        producer.produce(topics.actions, encode(ev), key=b"big")
    assert producer.flush(30) == 0

    def landed() -> tuple[int, int, int]:
        c = counts(p.clickhouse, db, "big")
        ((reason,),) = p.clickhouse.query(
            f"SELECT countIf(error_type = 'oversized') FROM {db}.dead_letters"
        ).result_rows
        return c.events, c.joined, int(reason)

    assert wait_until(lambda: landed() == (1, 1, 1), 90, pipeline=p), landed()

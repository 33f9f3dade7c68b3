from __future__ import annotations

import base64

import pytest

from meterline.demo.traffic import generate
from meterline.schemas import (
    ActionEvent,
    ActionKind,
    DeadLetter,
    EnrichedEvent,
    InvalidRecord,
    TelemetryEvent,
    TrajectoryRecord,
    TrajectoryState,
    UnsupportedSchemaVersion,
    decode_as,
    encode,
    utc_now,
)
from meterline.schemas.codec import encode_enriched, encode_timestamp
from meterline.sinks.clickhouse.rows import (
    COLUMNS,
    SinkEnrichedEvent,
    dead_letter_row,
    event_row,
    trajectory_row,
)


def as_dict(table: str, row: tuple[object, ...]) -> dict[str, object]:
    assert len(row) == len(COLUMNS[table])
    return dict(zip(COLUMNS[table], row, strict=True))


def test_joined_event_inherits_who_from_its_trajectory() -> None:
    ev = ActionEvent(
        event_id="e",
        name="gen",
        kind=ActionKind.LLM_CALL,
        model="m",
        trace_id="t",
        input_tokens=3,
        properties={"k": "v"},
    )
    traj = TrajectoryRecord(trace_id="t", trajectory_id="tr", user_id="u", agent_id="a")
    row = as_dict("events", event_row(EnrichedEvent(event=ev, trajectory=traj, version=2)))
    assert row["user_id"] == "u" and row["agent_id"] == "a" and row["trajectory_id"] == "tr"
    assert row["joined"] == 1 and row["version"] == 2
    assert row["kind"] == "llm_call" and row["input_tokens"] == 3
    assert row["properties"] == '{"k":"v"}'


def test_telemetry_row() -> None:
    ev = TelemetryEvent(event_id="e", event_type="user.accept", user_id="me", trajectory_id="x")
    row = as_dict("events", event_row(EnrichedEvent(event=ev)))
    assert row["kind"] == "telemetry" and row["name"] == "user.accept"
    assert row["user_id"] == "me" and row["trajectory_id"] == "x" and row["joined"] == 0


def test_trajectory_and_dead_letter_rows() -> None:
    state = TrajectoryState(trajectory=TrajectoryRecord(trace_id="t"), version=3)
    assert as_dict("trajectories", trajectory_row(state))["version"] == 3
    letter = DeadLetter(source_topic="s", partition=0, offset=1, payload=b"\xffbad", reason="r")
    row = as_dict("dead_letters", dead_letter_row(letter))
    assert base64.b64decode(str(row["payload_base64"])) == b"\xffbad"
    assert row["reason"] == "r"


def test_the_sinks_enriched_decode_gives_the_rows_the_full_model_gives() -> None:

    traffic = generate(project="slim", events=2_000, duplicate_rate=0.0, early_rate=0.1)
    trajectories = {
        r.trace_id: encode(r) for r in traffic.records if isinstance(r, TrajectoryRecord)
    }
    at = encode_timestamp(utc_now())
    values = [
        encode_enriched(encode(r), trajectories.get(r.trace_id or "") if i % 3 else None, 2, at)
        for i, r in enumerate(traffic.records)
        if not isinstance(r, TrajectoryRecord)
    ]
    assert {type(decode_as(EnrichedEvent, v).event).__name__ for v in values} == {
        "ActionEvent",
        "TelemetryEvent",
    }
    for value in values:
        full = decode_as(EnrichedEvent, value)
        assert event_row(decode_as(SinkEnrichedEvent, value)) == event_row(full)


def test_the_sinks_enriched_decode_still_rejects_a_bad_event_or_wrapper() -> None:

    event = b'{"type":"action","event_id":"e","name":"x","timestamp":"2026-11-01T00:00:00Z"'
    ok = b'{"type":"enriched","event":%s},"trajectory":{"trace_id":"t","status":"?"}}' % event
    assert decode_as(SinkEnrichedEvent, ok).trajectory is not None  # the rest is not read
    bad_event = b'{"type":"enriched","event":%s,"input_tokens":-1}}' % event
    with pytest.raises(InvalidRecord, match="input_tokens"):
        decode_as(SinkEnrichedEvent, bad_event)
    with pytest.raises(InvalidRecord, match="surprise"):
        decode_as(SinkEnrichedEvent, b'{"type":"enriched","event":%s},"surprise":1}' % event)
    with pytest.raises(UnsupportedSchemaVersion):
        decode_as(SinkEnrichedEvent, b'{"schema_version":9,"type":"enriched","event":%s}}' % event)

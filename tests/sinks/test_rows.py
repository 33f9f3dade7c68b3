from __future__ import annotations

import base64

from schemas import (
    ActionEvent,
    ActionKind,
    DeadLetter,
    EnrichedEvent,
    TelemetryEvent,
    TrajectoryRecord,
    TrajectoryState,
)
from sinks.clickhouse.rows import COLUMNS, dead_letter_row, event_row, trajectory_row


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

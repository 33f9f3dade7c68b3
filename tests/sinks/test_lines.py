"""Direct lines (lines.py) store exactly what the general way (pydantic decode, rows.py)
stores: both inserted into chDB and read back column by column."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from schemas import (
    EnrichedEvent,
    TrajectoryRecord,
    TrajectoryState,
    decode_as,
    encode,
)
from schemas.codec import encode_enriched
from sinks.clickhouse.lines import event_line, row_line, trajectory_line
from sinks.clickhouse.rows import COLUMNS, event_row, trajectory_row
from sinks.clickhouse.writer import ClickHouseWriter
from stream_processors.demo.traffic import generate

PROCESSED_AT = b'"2026-11-27T20:59:29.262152Z"'


def enriched(event: dict[str, Any], trajectory: dict[str, Any] | None, version: int = 2) -> bytes:
    """The processor's wire form: the event JSON as received, the trajectory as encoded."""
    traj = orjson.dumps(trajectory) if trajectory is not None else None
    return encode_enriched(orjson.dumps(event), traj, version, PROCESSED_AT)


TRAJ = {"type": "trajectory", "project": "p", "trace_id": "t1", "trajectory_id": "tr",
        "user_id": "u-traj", "anonymous_id": "anon", "agent_id": "a-traj", "status": "success",
        "started_at": "2026-11-01T00:00:00Z", "ended_at": None,
        "timestamp": "2026-11-01T00:00:01Z", "metadata": {"m": [1, 2.5, None]}}  # fmt: skip
LLM = {"type": "action", "project": "p", "event_id": "llm-1", "trace_id": "t1", "kind": "llm_call",
       "name": "chat", "model": "gpt-x", "provider": "acme", "input_tokens": 2**53 + 1,
       "output_tokens": 7, "cached_tokens": 3, "cost_usd": 0.1 + 0.2, "duration_ms": 12,
       "started_at": "2026-11-01T00:00:02.5Z", "ended_at": "2026-11-01T00:00:03.000001+00:00",
       "timestamp": "2026-11-01T00:00:03.123456Z", "status": "error", "error_type": "Timeout",
       "error_message": "line\nbreak \"quoted\" \u00e9\U0001f600", "parent_event_id": "p0",
       "user_id": "u-own", "properties": {"nested": {"x": [1e-7, 123456789.123456789, True]},
       "s": "\u0000\t"}, "metadata": {}, "source": "agentops"}  # fmt: skip
TELEMETRY = {"type": "telemetry", "event_id": "tel-1", "event_type": "user.accept",
             "trace_id": "t1", "trajectory_id": "own-tr",
             "timestamp": "2026-11-01T00:00:04Z"}  # fmt: skip
MINIMAL = {"type": "action", "event_id": "min-1", "name": "x", "timestamp": "2026-11-01T00:00:05Z"}

#: shapes the direct reader leaves to the general way (which normalises them)
GENERAL_ONLY = {
    "epoch seconds": {**MINIMAL, "event_id": "g1", "timestamp": 1_793_491_207},
    "epoch ms string": {**MINIMAL, "event_id": "g2", "timestamp": "1793491207123"},
    "offset": {**MINIMAL, "event_id": "g3", "timestamp": "2026-11-01T02:00:00+02:00"},
    "naive": {**MINIMAL, "event_id": "g4", "timestamp": "2026-11-01T00:00:00.5"},
    "space separator": {**MINIMAL, "event_id": "g5", "timestamp": "2026-11-01 00:00:00Z"},
    "nanoseconds": {**MINIMAL, "event_id": "g6", "timestamp": "2026-11-01T00:00:00.123456789Z"},
    "tokens as float": {**LLM, "event_id": "g7", "input_tokens": 5.0},
    "tokens as string": {**LLM, "event_id": "g8", "output_tokens": "5"},
    "started_at epoch": {**LLM, "event_id": "g9", "started_at": 1_793_491_200.25},
}


def generated() -> list[bytes]:
    """Generated traffic as the processor emits it (SDK-encoded events; joined where the
    trajectory is known)."""
    traffic = generate(project="gen", events=400, duplicate_rate=0.0, early_rate=0.0)
    trajectories = {r.trace_id: encode(r) for r in traffic.records
                    if isinstance(r, TrajectoryRecord)}  # fmt: skip
    return [
        encode_enriched(encode(r), trajectories.get(r.trace_id or ""), 2, PROCESSED_AT)
        for r in traffic.records
        if not isinstance(r, TrajectoryRecord)
    ]


def floats(n: int) -> list[bytes]:
    """LLM calls with random costs and durations: float text must parse to the same double
    (ClickHouse's fast float parsing misses about 8% of these)."""
    rng = random.Random(7)
    def x(lo: int, hi: int) -> float:
        return rng.random() * 10 ** rng.randint(lo, hi)

    return [
        enriched(LLM | {"event_id": f"float-{i}", "cost_usd": x(-8, 4), "duration_ms": x(-3, 7)},
                 TRAJ)
        for i in range(n)
    ]  # fmt: skip


def stored(w: ClickHouseWriter, table: str, key: str) -> list[tuple[Any, ...]]:
    cols = ", ".join(COLUMNS[table])
    return w.client.query(f"SELECT {cols} FROM {w.database}.{table} ORDER BY {key}").result_rows


def test_direct_event_lines_store_what_the_general_way_stores(
    writer: ClickHouseWriter, other_writer: ClickHouseWriter
) -> None:
    values = [
        *generated(),
        enriched(LLM, TRAJ),
        enriched(LLM | {"event_id": "llm-unjoined"}, None, 1),
        enriched(TELEMETRY, TRAJ),
        enriched(TELEMETRY | {"event_id": "tel-2", "trajectory_id": None}, TRAJ),
        enriched(MINIMAL, None, 1),
        *floats(300),
    ]
    direct = [event_line(v) for v in values]
    assert all(line is not None for line in direct)
    writer.insert_lines("events", [line for line in direct if line is not None])
    general = [event_row(decode_as(EnrichedEvent, v)) for v in values]
    other_writer.insert("events", general)  # the Native insert of Python rows: the reference
    want = stored(other_writer, "events", "event_id")
    assert stored(writer, "events", "event_id") == want
    assert len(want) == len(values)


def test_general_lines_store_what_native_rows_store(
    writer: ClickHouseWriter, other_writer: ClickHouseWriter
) -> None:
    values = [enriched(LLM, TRAJ), enriched(TELEMETRY, None, 1)] + [
        enriched(e, TRAJ) for e in GENERAL_ONLY.values()
    ]
    rows = [event_row(decode_as(EnrichedEvent, v)) for v in values]
    writer.insert_lines("events", [row_line("events", r) for r in rows])
    other_writer.insert("events", rows)
    assert stored(writer, "events", "event_id") == stored(other_writer, "events", "event_id")


@pytest.mark.parametrize("shape", sorted(GENERAL_ONLY))
def test_shapes_the_direct_reader_leaves_to_the_general_way(shape: str) -> None:
    value = enriched(GENERAL_ONLY[shape], TRAJ)
    decode_as(EnrichedEvent, value)  # valid: the general way stores it
    assert event_line(value) is None


@pytest.mark.parametrize(
    "value",
    [
        b"not json",
        b"[1]",
        b'{"type": "trajectory_state"}',
        enriched({**MINIMAL, "type": "other"}, None),
        enriched({k: v for k, v in MINIMAL.items() if k != "timestamp"}, None),  # now: general
        enriched({**MINIMAL, "name": ""}, None),
        enriched({**MINIMAL, "schema_version": 2}, None),
        enriched({**LLM, "kind": "llm"}, None),
        enriched({**LLM, "cost_usd": -1}, None),
        enriched({**MINIMAL, "properties": [1]}, None),
        enriched(MINIMAL, {**TRAJ, "user_id": 5}),
        enriched({**MINIMAL, "timestamp": "2026-13-01T00:00:00Z"}, None),
    ],
)
def test_the_direct_reader_declines_what_it_does_not_know(value: bytes) -> None:
    assert event_line(value) is None


def test_direct_trajectory_lines_store_what_the_general_way_stores(
    writer: ClickHouseWriter, other_writer: ClickHouseWriter
) -> None:
    states = [
        TrajectoryState(trajectory=TrajectoryRecord.model_validate(TRAJ), version=3),
        TrajectoryState(trajectory=TrajectoryRecord(trace_id="t2", project="p")),
        TrajectoryState(
            trajectory=TrajectoryRecord(
                trace_id="t3", status="timed_out", ended_at="2026-11-01T00:00:09.999999Z"
            )
        ),
    ]
    values = [encode(s) for s in states]
    direct = [trajectory_line(v) for v in values]
    assert all(line is not None for line in direct)
    writer.insert_lines("trajectories", [line for line in direct if line is not None])
    rows = [trajectory_row(decode_as(TrajectoryState, v)) for v in values]
    other_writer.insert("trajectories", rows)
    want = stored(other_writer, "trajectories", "trace_id")
    assert stored(writer, "trajectories", "trace_id") == want
    assert trajectory_line(enriched(MINIMAL, None)) is None
    offset = encode(states[0]).replace(b'01T00:00:01Z"', b'01T02:00:01+02:00"')
    assert trajectory_line(offset) is None

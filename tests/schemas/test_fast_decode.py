"""The msgspec fast path against pydantic: a strict subset, with equal values."""

from __future__ import annotations

import json
import random
import sys
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter

from meterline.demo.traffic import generate
from meterline.schemas import InvalidRecord, decode_raw, encode
from meterline.schemas.common import Id
from meterline.schemas.fast_decode import (
    FastActionEvent,
    FastTelemetryEvent,
    FastTrajectoryRecord,
    check_ids,
    decode_event,
    decode_raw_fast,
    to_json_dict,
    to_model,
    to_trajectory_model,
)

TS = "2026-03-04T05:06:07.123456Z"
ACTION: dict[str, Any] = {
    "schema_version": 1, "project": "p1", "event_id": "e-1", "trace_id": "t-1",
    "session_id": "s", "user_id": "u", "anonymous_id": "a", "agent_id": "ag",
    "timestamp": TS, "properties": {"n": 1, "f": 1.5, "s": "x", "l": [1, {"d": None}],
                                    "b": True, "big": 2**64 - 1, "ü": "日本"},
    "metadata": {"k": {"nested": [[]]}}, "type": "action", "kind": "llm_call",
    "name": "chat", "status": "error", "started_at": "2026-03-04T05:06:00+02:00",
    "ended_at": "2026-03-04T05:06:07", "duration_ms": 12.5, "model": "m", "provider": "o",
    "input_tokens": 10, "output_tokens": 2, "cached_tokens": 1, "cost_usd": 0.001,
    "error_type": "Timeout", "error_message": "slow\nreally", "parent_event_id": "e-0",
    "source": "sdk",
}  # fmt: skip
TELEMETRY: dict[str, Any] = {
    "type": "telemetry", "event_id": "e-2", "timestamp": TS, "event_type": "user.accept",
    "trajectory_id": "tr", "source": "web", "properties": {"score": 5},
}  # fmt: skip
TRAJECTORY = {"type": "trajectory", "trace_id": "t", "timestamp": TS}
FULL_TRAJECTORY: dict[str, Any] = {
    "type": "trajectory", "schema_version": 1, "project": "p1", "trace_id": "t-1",
    "trajectory_id": "tr", "user_id": "u", "anonymous_id": "a", "agent_id": "ag",
    "status": "success", "started_at": "2026-03-04T05:06:00+02:00",
    "ended_at": "2026-03-04T05:06:07", "timestamp": TS, "metadata": {"k": [1, {"d": None}]},
}  # fmt: skip

HOSTILE_VALUES: list[Any] = [
    None, "", " ", " x", "x ", "x\t", "\u00a0x", "x\u2028", "\u3000", "a\x00b", "a\x7fb", "a\x85",
    "\x1f", "a\ud800", "é", "日本", "🙂" * 256, "🙂" * 257, "x" * 256, "x" * 257, "x" * 512,
    "x" * 513, 0, -1, 1, 2, 1.0, 1.5, -0.0, -0.5, "1", "1.5", True, False, 2**63, 2**64, 10**30,
    2**63 - 1, 2**64 - 1, 1e12, 1.0000001e12, 1e308, [], {}, {"a": 1}, "action", "telemetry",
    "trajectory", "llm_call", "LLM_CALL", {"n": 2**64}, [1, 2**64], {"n": [-(2**63) - 1]},
    {"n": -(2**63)}, {"n": {"m": 10**30}},
    "success", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00", "2026-01-01T00:00:00+05:30",
    "2026-01-01T00:00:00.1234567Z", "2026-01-01T00:00:00.9999999Z", "2026-01-01t00:00:00z",
    "2026-01-01 00:00:00Z", "2026-01-01", "2026-01-01T00:00", "20260101T000000Z", "20260101",
    " 2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z ", "2026-02-30T00:00:00Z",
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "1767225600", "1767225600.5",
    1767225600, 1767225600000, 1767225600.25, "-1", "2026-01-01T00:00:00,5Z",
]  # fmt: skip


def outcome(decode: Any, data: bytes | str) -> tuple[Any, ...]:
    """What a decoder did with ``data``, comparable across the two paths."""
    try:
        record = decode(data)
    except InvalidRecord as exc:
        return ("rejected", type(exc).__name__, exc.reason, exc.error_type)
    except Exception as exc:  # e.g. OverflowError: must match too
        return ("raised", type(exc).__name__)
    return ("accepted", fields(record))


def fields(record: Any) -> dict[str, str]:
    """Every field with its type and value (repr: 1 is not 1.0, tz-aware is not naive).
    A trajectory Struct's unset fields read as the model's defaults."""
    if isinstance(record, FastTrajectoryRecord):
        record = to_trajectory_model(record)
    if isinstance(record, BaseModel):
        names = list(type(record).model_fields)
    else:
        names = [*record.__struct_fields__, "type"]
    return {name: repr(getattr(record, name)) for name in sorted(names)}


def check(data: bytes | str) -> bool:
    """The fast path's promise for one input; True if it took it."""
    reference = outcome(decode_raw, data)
    fast = decode_event(data)
    if fast is not None:
        assert reference[0] == "accepted", (data, reference)
        model = decode_raw(data)
        if isinstance(fast, FastTrajectoryRecord):
            built = to_trajectory_model(fast)
            assert fields(built) == reference[1], data
            assert built == model
            # what a merge applies: the fields the JSON set to a value (``project`` and
            # ``metadata`` either way: equal on both sides of a merge / merged as a union)
            either = {"project", "metadata"}
            assert built.model_fields_set - either == {
                k for k in model.model_fields_set - {"type"} - either
                if getattr(model, k) is not None
            }, data
        else:
            assert fields(fast) == reference[1], data
            assert to_model(fast) == model
            assert to_json_dict(fast) == model.model_dump(mode="json")
    assert outcome(decode_raw_fast, data) == reference, data
    return fast is not None


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass")


def hostile_inputs() -> list[bytes | str]:
    base = [
        ACTION, TELEMETRY, TRAJECTORY, FULL_TRAJECTORY,
        {**ACTION, "kind": "tool_call", "model": None},
    ]  # fmt: skip
    out: list[bytes | str] = [dumps(b) for b in base]
    out += [json.dumps(b) for b in base]  # str input, ASCII escapes
    for b in base:
        for key in [*b, "unknown"]:
            out += [dumps({**b, key: v}) for v in HOSTILE_VALUES]
            out.append(dumps({k: v for k, v in b.items() if k != key}))
    raw = dumps(TELEMETRY)
    out += [
        b"", b"null", b"[]", b"nope", b"{", raw + b"x", b"\xef\xbb\xbf" + raw, raw[:-1],
        raw.replace(b'"e-2"', b'"e\xff"'), raw.replace(b'"e-2"', b'"e\xed\xa0\x80"'),
        raw.replace(b'"e-2"', b'"e\\ud800"'), raw.replace(b'"e-2"', b'"e\\u0000"'),
        raw.replace(b'"e-2"', b'"\\u0020e"'), raw.replace(b'"e-2"', b'"e\\t"'),
        raw.replace(b'"e-2"', b'"e\x7f"'), raw.replace(b"2026", b"\\u0032026"),
        raw.replace(b'123456Z"', b'123456\\u0037Z"'),
        raw[:-1] + b', "event_id": "dup"}', raw[:-1] + b', "type": "action"}',
        b'{"type": "action", ' + raw[1:], raw[:-1] + b', "type": "telemetry"}',
        raw[:-1] + b', "properties": {"a": 1, "a": 2}}', raw.replace(b"5}", b"NaN}"),
        raw.replace(b"5}", b"1e400}"), raw.replace(b"5}", b"-}"), b"  " + raw + b"\n ",
    ]  # fmt: skip
    action = dumps(ACTION)
    for number in (b"1e400", b"-1e400", b"Infinity", b"NaN", b"1e12", b"1.0000001e12"):
        out.append(action.replace(b'"duration_ms": 12.5', b'"duration_ms": ' + number))
        out.append(action.replace(b'"cost_usd": 0.001', b'"cost_usd": ' + number))
    for depth in (100, 199, 200, 201, 255, 256, 1000, 5000):
        out.append(dumps({**TELEMETRY, "properties": {"d": 0}}).replace(
            b'"d": 0', b'"d": ' + b"[" * depth + b"]" * depth))  # fmt: skip
        out.append(dumps({**TELEMETRY, "properties": {"d": 0}}).replace(
            b'"d": 0', b'"d": ' + b'{"a":' * depth + b"1" + b"}" * depth))  # fmt: skip
    return out


def mutations(n: int, seed: int = 20260501) -> list[bytes]:
    """Random edits of valid events: a field dropped, replaced, added, or bytes changed."""
    rng = random.Random(seed)
    valid = [ACTION, TELEMETRY, {**ACTION, "kind": "action", "model": None}, FULL_TRAJECTORY]
    out: list[bytes] = []
    for _ in range(n):
        obj = dict(rng.choice(valid))
        for _ in range(rng.randint(1, 3)):
            key = rng.choice([*obj, "extra"])
            roll = rng.random()
            if roll < 0.3:
                obj.pop(key, None)
            else:
                obj[key] = rng.choice(HOSTILE_VALUES)
        data = bytearray(dumps(obj))
        if rng.random() < 0.2:
            i = rng.randrange(len(data))
            data[i] = rng.choice(b' "\\{}[]:,0a\x00\x7f\xff\xc3')
        out.append(bytes(data))
    return out


def test_valid_events_of_every_kind_take_the_fast_path_with_equal_values() -> None:
    for kind in ("action", "llm_call", "tool_call", "error"):
        assert check(dumps({**ACTION, "kind": kind}))
    assert check(dumps(TELEMETRY))
    assert check(json.dumps(ACTION))  # str, \u escapes
    assert check(dumps(TRAJECTORY))
    assert check(dumps(FULL_TRAJECTORY))
    for status in ("running", "success", "error", "cancelled", "timed_out"):
        assert check(dumps({**TRAJECTORY, "status": status}))
    records = [encode(r) for r in generate(project="p", events=500).records]
    assert all(check(r) for r in records)


def test_hostile_inputs_agree_with_pydantic() -> None:
    inputs = hostile_inputs()
    taken = sum(check(data) for data in inputs)
    assert 50 < taken < len(inputs)  # the corpus exercises both paths


def test_random_mutations_agree_with_pydantic() -> None:
    inputs = mutations(4_000)
    taken = sum(check(data) for data in inputs)
    assert 100 < taken < len(inputs) - 1_000


def test_lax_forms_fall_back_to_pydantic() -> None:
    for key, value in [
        ("timestamp", 1767225600), ("timestamp", "20260101"), ("input_tokens", "5"),
        ("input_tokens", 5.0), ("event_id", " e "), ("kind", "LLM_CALL"),
    ]:  # fmt: skip
        data = dumps({**ACTION, key: value})
        assert decode_event(data) is None
        check(data)
    assert decode_raw_fast(dumps({**ACTION, "timestamp": 1767225600})).timestamp.year == 2026


def test_more_than_six_fractional_digits_are_truncated_as_pydantic_does() -> None:
    data = dumps({**TELEMETRY, "timestamp": "2026-01-01T00:00:00.9999999Z"})
    event = decode_event(data)  # msgspec's own datetime parser would round up to 00:00:01
    assert event is not None and event.timestamp.microsecond == 999_999
    assert check(data)


def test_what_the_fast_path_gives_is_what_the_steps_read() -> None:
    event = decode_event(dumps(ACTION))
    assert isinstance(event, FastActionEvent) and event.type == "action"
    assert event.routing_key == "t-1" and event.timestamp.tzinfo is not None
    telemetry = decode_event(dumps({**TELEMETRY, "trace_id": None}))
    assert isinstance(telemetry, FastTelemetryEvent) and telemetry.routing_key == "e-2"


@pytest.mark.parametrize("where", ["start", "end"])
def test_no_character_pydantic_strips_or_refuses_passes_the_id_check(where: str) -> None:
    ids = TypeAdapter(Id)
    for code in range(sys.maxunicode + 1):
        value = chr(code) + "a" if where == "start" else "a" + chr(code)
        try:
            check_ids((value,))
        except ValueError:
            continue
        assert ids.validate_python(value) == value, hex(code)

"""JSONEachRow lines for the sink's inserts: one JSON object per row, column names as keys.

ClickHouse parses the lines (``FORMAT JSONEachRow``, :meth:`ClickHouseWriter.insert_lines`);
Python only assembles them. Two ways to a line:

- :func:`event_line` / :func:`trajectory_line`: straight from the JSON of an enriched event
  or a trajectory state, for the shape meterline's processor writes (ISO 8601 UTC times,
  fields of their declared JSON types). They return None for anything else, and the caller
  takes the general way. The processor validated every record before writing it (the
  event part of an enriched event is the producer's JSON as the processor accepted it), so
  these check types and shapes only, not identifier patterns or lengths.
- :func:`row_line`: a row of :mod:`.rows` (the general way: decoded and validated with the
  pydantic models, defaults filled, epoch and offset times normalised to UTC).

Both give ClickHouse the same values for the same record (``tests/sinks/test_lines.py``
inserts both into chDB and compares). Times go as ISO 8601 text, parsed by ClickHouse with
``date_time_input_format = best_effort``; floats with ``precise_float_parsing``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson

from schemas import SCHEMA_VERSION, ActionKind, Status, TrajectoryStatus
from sinks.clickhouse.rows import COLUMNS

#: Settings every line insert carries.
INSERT_SETTINGS = {"date_time_input_format": "best_effort", "precise_float_parsing": 1}

_ISO_UTC = re.compile(
    r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d"
    r"(\.\d{1,6})?(Z|\+00:00)"
)
_KINDS = frozenset(k.value for k in ActionKind)
_STATUSES = frozenset(s.value for s in Status)
_TRAJECTORY_STATUSES = frozenset(s.value for s in TrajectoryStatus)
_EVENT_COLUMNS = tuple(COLUMNS["events"])
_TRAJECTORY_COLUMNS = tuple(COLUMNS["trajectories"])
_NO_LLM = (None, None, None, "", "", 0, 0, 0, 0.0, "", "", "")


class _General(Exception):
    """The record is not in the shape the direct way reads: take the general way."""


def row_line(table: str, row: Sequence[Any]) -> bytes:
    """A row of :mod:`.rows` (``COLUMNS[table]`` order) as a line. Raises
    ``orjson.JSONEncodeError`` for a string ClickHouse could not take (lone surrogates)."""
    return orjson.dumps(dict(zip(COLUMNS[table], row, strict=True)))


def event_line(value: bytes) -> bytes | None:
    """The ``events`` line of an enriched event as the processor writes it; None: not that
    shape (any doubt), decode it the general way."""
    try:
        d = orjson.loads(value)
        if type(d) is not dict or d.get("type") != "enriched":
            return None
        _version(d)
        ev, traj = d["event"], d.get("trajectory")
        version, processed_at = d["version"], _time(d["processed_at"])
        if type(ev) is not dict or type(version) is not int or version < 0:
            return None
        if traj is not None and type(traj) is not dict:
            return None
        _version(ev)
        get = ev.get
        record_type = get("type")
        if record_type == "action":
            kind, name, status = _enum(get("kind", "action"), _KINDS), get("name"), get(
                "status", "success"
            )
            _enum(status, _STATUSES)
            llm: tuple[Any, ...] = (
                _opt_time(get("started_at")),
                _opt_time(get("ended_at")),
                _opt_number(get("duration_ms")),
                _str(get("model")),
                _str(get("provider")),
                _count(get("input_tokens", 0)),
                _count(get("output_tokens", 0)),
                _count(get("cached_tokens", 0)),
                float(_number(get("cost_usd", 0.0))),
                _str(get("error_type")),
                _str(get("error_message")),
                _str(get("parent_event_id")),
            )
            own_trajectory_id = ""
        elif record_type == "telemetry":
            kind, name, status, llm = "telemetry", get("event_type"), "", _NO_LLM
            own_trajectory_id = _str(get("trajectory_id"))
        else:
            return None
        if type(name) is not str or not name:
            return None
        t = traj.get if traj is not None else {}.get
        row = (
            _str(get("project", "default")),
            _required(get("event_id")),
            record_type,
            kind,
            name,
            _str(get("trace_id")),
            _str(get("session_id")),
            own_trajectory_id or _str(t("trajectory_id")),
            _str(get("user_id")) or _str(t("user_id")),
            _str(get("anonymous_id")) or _str(t("anonymous_id")),
            _str(get("agent_id")) or _str(t("agent_id")),
            status,
            _time(get("timestamp")),  # absent: the general way's default (now)
            *llm,
            _str(get("source", "sdk")),
            _object(get("properties", {})),
            _object(get("metadata", {})),
            1 if traj is not None else 0,
            version,
            processed_at,
        )
        return orjson.dumps(dict(zip(_EVENT_COLUMNS, row, strict=True)))
    except (_General, KeyError, TypeError, ValueError):  # orjson's errors are ValueErrors
        return None


def trajectory_line(value: bytes) -> bytes | None:
    """The ``trajectories`` line of a trajectory state as the processor writes it; None:
    decode it the general way."""
    try:
        d = orjson.loads(value)
        if type(d) is not dict or d.get("type") != "trajectory_state":
            return None
        _version(d)
        t, version = d["trajectory"], d.get("version", 1)
        if type(t) is not dict or type(version) is not int or t.get("type", "trajectory") != (
            "trajectory"
        ):
            return None
        _version(t)
        get = t.get
        row = (
            _str(get("project", "default")),
            _required(get("trace_id")),
            _str(get("trajectory_id")),
            _str(get("user_id")),
            _str(get("anonymous_id")),
            _str(get("agent_id")),
            _enum(get("status", "running"), _TRAJECTORY_STATUSES),
            _opt_time(get("started_at")),
            _opt_time(get("ended_at")),
            _time(get("timestamp")),
            _object(get("metadata", {})),
            version,
        )
        return orjson.dumps(dict(zip(_TRAJECTORY_COLUMNS, row, strict=True)))
    except (_General, KeyError, TypeError, ValueError):
        return None


def _version(d: dict[str, Any]) -> None:
    v = d.get("schema_version", SCHEMA_VERSION)
    if type(v) is not int or not 1 <= v <= SCHEMA_VERSION:
        raise _General


def _str(value: Any) -> str:
    """An optional string field: None -> ""."""
    if value is None:
        return ""
    if type(value) is not str:
        raise _General
    return value


def _required(value: Any) -> str:
    if type(value) is not str or not value:
        raise _General
    return value


def _enum(value: Any, allowed: frozenset[str]) -> str:
    if type(value) is not str or value not in allowed:
        raise _General
    return value


def _time(value: Any) -> str:
    if type(value) is not str or _ISO_UTC.fullmatch(value) is None:
        raise _General
    return value


def _opt_time(value: Any) -> str | None:
    return None if value is None else _time(value)


def _number(value: Any) -> int | float:
    if (type(value) is not int and type(value) is not float) or value < 0:
        raise _General
    return value  # type: ignore[no-any-return]


def _opt_number(value: Any) -> float | None:
    return None if value is None else float(_number(value))


def _count(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise _General
    return value


def _object(value: Any) -> str:
    """properties / metadata as stored: compact JSON text, "{}" when empty."""
    if type(value) is not dict:
        raise _General
    return orjson.dumps(value).decode() if value else "{}"

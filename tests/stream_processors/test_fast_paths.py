"""The processor's hot-path shortcuts give what the general paths give (see
``bench/bench_processor.py`` for what each saves)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import faust
import orjson

from meterline.schemas import (
    VERSION_JOINED,
    ActionEvent,
    EnrichedEvent,
    TelemetryEvent,
    TrajectoryRecord,
    TrajectoryState,
    TrajectoryStatus,
    decode_as,
    encode,
)
from meterline.schemas.codec import encode_enriched, encode_state, encode_timestamp
from meterline.schemas.fast_decode import decode_event, to_model
from meterline.stream_processors.state.changelog import Changelog
from meterline.stream_processors.state.writeback import WriteBack, _current_partition, as_current
from meterline.stream_processors.steps.enriched import encode_enriched_event, event_json
from meterline.stream_processors.steps.join import TrajectoryJoiner, trace_key
from meterline.stream_processors.steps.parked import ParkedEvents
from tests.stream_processors.state.test_writeback import RecordingChangelog, Store

T0 = datetime(2026, 5, 1, 12, 0, 1, 250, tzinfo=UTC)


class _Out:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any, Any, int | None]] = []

    def send(self, topic: str, key: Any, value: Any, partition: int | None = None) -> None:
        self.sent.append((topic, key, value, partition))


def test_changelog_serialises_as_faust_does() -> None:
    app = faust.App("fast-paths", broker="kafka://127.0.0.1:1", store="memory://")
    json_table = app.Table("t-json", partitions=2, key_type=str)
    raw_table = app.Table("t-raw", partitions=2, key_type=str, value_type=bytes)
    values: list[Any] = [
        {"version": 3, "trajectory": {"metadata": {"é": "✓", "n": [1, 2.5, 1e300, None]}},
         "p": 1, "seen": 1.5, "ok": True},
        {"e": {"properties": {"nested": {"deep": [{"x": -0.0}]}}}, "t": 0.1, "x": False},
        {},
    ]  # fmt: skip
    keys: list[Any] = ["plain", "bench\x1ftrace\x1f12", "ünïcode", 7]
    for table, samples in ((json_table, values), (raw_table, [b"\x00\x01digests", b""])):
        out = _Out()
        changelog = Changelog(table, out)  # type: ignore[arg-type]
        topic = table.changelog_topic
        for key in keys:
            for value in [*samples, None]:
                changelog.send(1, key, value)
                want_key = topic.prepare_key(key, table.key_serializer)[0]
                want_value = (
                    None if value is None
                    else topic.prepare_value(value, table.value_serializer)[0]
                )  # fmt: skip
                assert out.sent[-1] == (changelog.topic_name, want_key, want_value, 1)


def test_trajectory_state_assembled_from_json_is_what_encode_gives() -> None:
    traj = TrajectoryRecord(
        trace_id="t", user_id="u", status=TrajectoryStatus.SUCCESS, started_at=T0,
        timestamp=T0, metadata={"k": [1, "é"]},
    )  # fmt: skip
    for version in (1, 2, 1234):
        state = TrajectoryState(trajectory=traj, version=version)
        assert encode_state(traj.model_dump_json().encode(), version) == encode(state)


def _ev(i: int) -> ActionEvent:
    return ActionEvent(event_id=f"e{i}", name="x", trace_id="t", timestamp=T0)


def test_parked_events_come_back_with_their_json_also_after_a_recovery() -> None:
    table: dict[str, Any] = {}
    key = trace_key("default", "t")
    parked = ParkedEvents(table, max_per_trace=10)
    parked.park(key, _ev(0), 0, 1.0, sent=False, event_json=b'{"as":"received"}')
    parked.park(key, _ev(1), 0, 2.0, sent=True)
    released = parked.release_encoded(key)
    assert [(e, j, s) for e, j, s in released] == [
        (_ev(0), b'{"as":"received"}', False),
        (_ev(1), encode(_ev(1)), True),
    ]
    assert parked._events == {} and table == {}
    parked.park(key, _ev(2), 0, 3.0, sent=False, event_json=b"{}")
    recovered = ParkedEvents(table, max_per_trace=10)  # a new worker: nothing in memory
    assert recovered.recover() == 1
    assert recovered.release_encoded(key) == [(_ev(2), encode(_ev(2)), False)]
    assert parked.recover() == 0 and parked._events == {}  # a recovery forgets memory
    # a trace forgotten as idle (every event went out) is forgotten in memory too
    other = trace_key("default", "u")
    parked.park(other, _ev(3), 0, 4.0, sent=True, event_json=b"{}")
    assert parked.forget_idle(10.0, None) == 1 and parked._events == {}


def test_late_events_encoded_are_the_enriched_events_the_models_give() -> None:
    events: list[ActionEvent | TelemetryEvent] = [
        _ev(0), TelemetryEvent(event_id="t1", event_type="user.accept", trace_id="t", timestamp=T0)
    ]
    fast = TrajectoryJoiner({}, {}, grace_s=10)
    for e in events:
        assert fast.join_encoded(e, 0, 1.0, encode(e)) is None
    record = TrajectoryRecord(trace_id="t", user_id="u", timestamp=T0)
    applied = fast.apply_trajectory_encoded(record, 0, 2.0)
    state = TrajectoryState(trajectory=record, version=1)
    assert applied.state == state and applied.state_json == encode(state)
    assert [e for e, _ in applied.late] == events
    for (_, late_json), model in zip(applied.late, events, strict=True):
        wire = encode_enriched(late_json, applied.trajectory_json, VERSION_JOINED,
                               encode_timestamp(T0))  # fmt: skip
        built = EnrichedEvent(event=model, trajectory=record, version=VERSION_JOINED,
                              processed_at=T0)  # fmt: skip
        assert decode_as(EnrichedEvent, wire) == built
    assert (fast.joined, fast.late_joined) == (2, 0)  # held events count as joined


def test_an_event_without_its_json_encodes_to_its_models_json_on_both_paths() -> None:
    """The one encoder of enriched events (``steps/enriched.py``) encodes a Struct of the
    fast path without building its model: the same JSON value as the model's."""
    model = ActionEvent(
        event_id="e", name="x", trace_id="t", kind="llm_call", model="m", input_tokens=3,
        properties={"n": [1, {"big": 2**64 - 1}], "f": 1e300}, duration_ms=1.5,
        started_at="2026-01-01T00:00:00.5+02:00", timestamp=T0,
    )  # fmt: skip
    telemetry = TelemetryEvent(event_id="t1", event_type="x", metadata={"é": "✓"}, timestamp=T0)
    for m in (model, telemetry):
        fast = decode_event(encode(m))
        assert fast is not None and not isinstance(fast, TrajectoryRecord)
        assert event_json(m) == encode(m) and event_json(m, b"{}") == b"{}"
        assert orjson.loads(event_json(fast)) == orjson.loads(encode(to_model(fast)))
        wire = encode_enriched_event(fast, None, None, 1, encode_timestamp(T0))
        assert decode_as(EnrichedEvent, wire).event == m


class _Event:
    """A Faust event as far as the current partition goes."""

    def __init__(self, partition: int) -> None:
        self.message = type("M", (), {"partition": partition})()


class _PartitionStore(Store):
    """Records the current event's partition at each store write (RocksDB picks its
    partition database from it)."""

    def __init__(self) -> None:
        super().__init__()
        self.at: list[tuple[str, int | None]] = []

    def __setitem__(self, key: str, value: Any) -> None:
        self.at.append((key, _current_partition()))
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.at.append((key, _current_partition()))
        super().__delitem__(key)


def test_flush_writes_each_key_under_its_partition_and_restores_the_current_event() -> None:
    store = _PartitionStore()
    store["gone"] = 1
    store.at.clear()
    changelog = RecordingChangelog()
    wb = WriteBack(store, changelog)  # type: ignore[arg-type]
    wb.put("a", 1, 3)
    wb.put("b", 2, 3)
    wb.remove("gone", 1)
    wb.put("c", 3, 2)
    wb._dirty["n"] = (6, None)  # written outside any event: Faust's path, the caller's event
    wb.put("d", 4, 2)
    with as_current(_Event(9)):  # type: ignore[arg-type]
        wb.flush()
        assert _current_partition() == 9
    assert _current_partition() is None
    assert store.at == [("a", 3), ("b", 3), ("gone", 1), ("c", 2), ("n", 9), ("d", 2)]
    assert changelog.sent == [(3, "a", 1), (3, "b", 2), (1, "gone", None), (2, "c", 3),
                              (2, "d", 4)]  # fmt: skip

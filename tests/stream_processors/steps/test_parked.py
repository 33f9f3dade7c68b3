from __future__ import annotations

from typing import Any

from meterline.schemas import ActionEvent
from meterline.stream_processors.steps.join import trace_key
from meterline.stream_processors.steps.parked import ParkedEvents
from tests.stream_processors.steps.fixtures import release

KEY = trace_key("default", "t")


def event(event_id: str) -> ActionEvent:
    return ActionEvent(event_id=event_id, name="x", trace_id="t")


def ids(events: list[tuple[Any, bool]]) -> list[tuple[str, bool]]:
    return [(e.event_id, sent) for e, sent in events]


class _Reads(dict[str, Any]):
    """Counts reads, as a Faust table would pay for them."""

    reads = 0

    def get(self, key: str, default: Any = None) -> Any:
        self.reads += 1
        return super().get(key, default)


def test_a_sweep_reads_only_the_traces_and_events_due() -> None:
    table = _Reads()
    parked = ParkedEvents(table, max_per_trace=10)
    for i in range(1_000):
        parked.park(trace_key("default", f"t{i}"), event(f"e{i}"), 0, float(i % 2), sent=False)
    table.reads = 0
    assert parked.due(5.0, 10.0, None) == [] and table.reads == 0
    assert len(parked.due(10.0, 10.0, None)) == 500  # those parked at 0.0
    assert table.reads == 1_000  # each due trace's index and its one event


def test_a_replay_after_a_partial_flush_parks_the_same_records() -> None:
    """WriteBack flushes a trace's index after its event records: a crash in between leaves
    records the index does not count, and the replayed batch writes the same keys again."""
    table: dict[str, Any] = {}
    parked = ParkedEvents(table, max_per_trace=100)
    for i in range(2):
        parked.park(KEY, event(f"e{i}"), 0, 1.0, sent=True)
    durable = dict(table)  # after the first batch
    for i in range(2, 5):
        parked.park(KEY, event(f"e{i}"), 0, 2.0, sent=True)
    crashed = {**durable, **{k: v for k, v in table.items() if k != KEY}}  # index not flushed
    replay = ParkedEvents(crashed, max_per_trace=100)
    assert replay.recover() == 1
    for i in range(2, 5):
        replay.park(KEY, event(f"e{i}"), 0, 3.0, sent=True)
    assert crashed.keys() == table.keys()
    assert ids(release(replay, KEY)) == [(f"e{i}", True) for i in range(5)]
    assert crashed == {}


def test_an_event_sent_at_park_behind_a_held_one_is_not_sent_again() -> None:
    """Held and sent-at-park events mix when the grace period changes across a restart."""
    parked = ParkedEvents({}, max_per_trace=10)
    assert parked.park(KEY, event("held"), 0, 0.0, sent=False)
    assert parked.park(KEY, event("sent"), 0, 1.0, sent=True)
    assert [e.event_id for e, _ in parked.due(10.0, 10.0, None)] == ["held"]
    assert parked.due(100.0, 10.0, None) == []
    assert parked.forget_idle(50.0, None) == 1  # everything went out, idle since 1.0
    assert release(parked, KEY) == []


def test_the_per_trace_limit_and_the_record_size_limit_write_nothing() -> None:
    table: dict[str, Any] = {}
    parked = ParkedEvents(table, max_per_trace=1, max_record_bytes=2_000)
    big = ActionEvent(event_id="big", name="x", trace_id="t", properties={"b": "x" * 2_000})
    assert not parked.park(KEY, big, 0, 0.0, sent=True) and table == {}
    assert parked.park(KEY, event("a"), 0, 0.0, sent=True)
    assert not parked.park(KEY, event("b"), 0, 0.0, sent=True)
    assert len(table) == 2 and table[KEY]["n"] == 1


def test_an_event_from_the_fast_path_parks_as_its_model_would_and_recovers_as_the_model() -> None:
    """The processor parks msgspec Structs (``meterline.schemas.fast_decode``): the parked record
    is the
    model's ``model_dump(mode="json")``, so a restarted worker reads it back as the model."""
    from meterline.schemas import encode
    from meterline.schemas.fast_decode import decode_event

    model = ActionEvent(
        event_id="e", name="x", trace_id="t", kind="llm_call", model="m", input_tokens=3,
        properties={"n": [1, {"big": 2**64 - 1}]}, started_at="2026-01-01T00:00:00.5+02:00",
    )  # fmt: skip
    fast = decode_event(encode(model))
    assert fast is not None
    by_fast, by_model = ParkedEvents({}, max_per_trace=5), ParkedEvents({}, max_per_trace=5)
    assert by_fast.park(KEY, fast, 0, 1.0, sent=False, event_json=encode(model))
    assert by_model.park(KEY, model, 0, 1.0, sent=False)
    assert by_fast.table == by_model.table
    restarted = ParkedEvents(dict(by_fast.table), max_per_trace=5)
    assert restarted.recover() == 1
    assert restarted.due(10.0, 5.0, None) == [(model, encode(model))]

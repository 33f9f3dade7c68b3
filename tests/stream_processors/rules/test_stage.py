"""The rule stage gives the outcomes of evaluating whole trajectories, batch by batch."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest

from meterline.schemas import (
    ActionKind,
    ControlPlane,
    EnrichedEvent,
    Event,
    Outcome,
    Status,
    TrajectoryRecord,
    TrajectoryStatus,
)
from meterline.stream_processors.rules import evaluate_trajectory
from meterline.stream_processors.rules.stage import RuleStage, state_key
from tests.stream_processors.rules.fixtures import action, example, llm, telemetry


class JsonTable(dict[str, Any]):
    """A dict that stores values as JSON text, as a Faust table with a json serializer does."""

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, json.dumps(value))

    def __getitem__(self, key: str) -> Any:
        return json.loads(super().__getitem__(key))

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return json.loads(super().__getitem__(key)) if key in self else default

    def items(self) -> Iterator[tuple[str, Any]]:  # type: ignore[override]
        return iter([(k, self[k]) for k in self.keys()])


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def trajectory_events(rng: random.Random, trace: str, user: str) -> list[Event]:
    """A random mix of everything the example rules look at, plus noise."""
    out: list[Event] = []
    for i in range(rng.randint(2, 14)):
        eid, t = f"{trace}-{i}", rng.uniform(0, 4000)
        roll = rng.random()
        ok = Status.SUCCESS if rng.random() < 0.8 else Status.ERROR
        if roll < 0.2:
            out.append(action(eid, "object_detection", t, trace=trace, user=user, status=ok))
        elif roll < 0.4:
            amount = rng.choice([10, 999, 1000, 2500.5, "1200"])
            cur = rng.choice(["EUR", "USD", "GBP"])
            out.append(
                action(eid, "data_extraction", t, trace=trace, user=user, status=ok,
                       amount=amount, currency=cur, noise="x" * 50)
            )  # fmt: skip
        elif roll < 0.55:
            out.append(llm(eid, t, trace=trace, user=user, status=ok))
        elif roll < 0.7:
            out.append(telemetry(eid, "user.accept", t, trace=trace, user=user))
        elif roll < 0.8:
            final = rng.random() < 0.5
            out.append(
                action(eid, "workflow_step", t, trace=trace, user=user, final=final,
                       tasks=rng.randint(1, 5))
            )  # fmt: skip
        else:
            out.append(action(eid, "web_search", t, trace=trace, kind=ActionKind.TOOL_CALL))
    return out


def joined(events: list[Event], user: str) -> list[EnrichedEvent]:
    out = []
    for e in events:
        assert e.trace_id
        t = TrajectoryRecord(project=e.project, trace_id=e.trace_id, user_id=user)
        out.append(EnrichedEvent(event=e, trajectory=t, version=2))
    return out


def apply(live: dict[str, Outcome], emitted: list[Outcome]) -> None:
    for o in emitted:
        assert o.computed_at is not None
        if o.retracted:
            live.pop(o.outcome_id, None)
        else:
            live[o.outcome_id] = o.model_copy(update={"computed_at": None})


@pytest.mark.parametrize("seed", range(8))
def test_batches_in_any_order_with_duplicates_give_the_whole_trajectory_answer(seed: int) -> None:
    rng = random.Random(seed)
    config = example()
    everything: list[EnrichedEvent] = []
    for n in range(12):
        user = f"u{n % 3}"
        everything += joined(trajectory_events(rng, f"tr{n}", user), user)
    stream = everything + rng.sample(everything, len(everything) // 5)  # duplicates
    rng.shuffle(stream)
    stage = RuleStage(config, JsonTable())
    live: dict[str, Outcome] = {}
    i = 0
    while i < len(stream):
        size = rng.randint(1, 15)
        for item in stream[i : i + size]:
            stage.observe(item)
        apply(live, stage.drain())
        i += size
    want = evaluate_trajectory(config, everything)
    assert want, "the generator should produce outcomes"
    assert sorted(live.values(), key=lambda o: o.outcome_id) == sorted(
        want, key=lambda o: o.outcome_id
    )


def test_only_changes_are_emitted_and_state_is_slim() -> None:
    state = JsonTable()
    stage = RuleStage(example(), state)
    stage.observe(action("d1", "object_detection", 1, big="y" * 1000))
    stage.observe(action("s1", "web_search", 2, kind=ActionKind.TOOL_CALL))
    assert stage.drain() == []
    stage.observe(action("x1", "data_extraction", 3, amount=5, other="z" * 1000))
    [invoice] = stage.drain()
    assert (invoice.rule_id, invoice.event_ids, invoice.user_id) == (
        "invoice_processed", ("d1", "x1"), "u1",
    )  # fmt: skip
    stage.observe(action("x1", "data_extraction", 3, amount=5))  # a duplicate changes nothing
    assert stage.drain() == []
    value = state[state_key("default", "tr1")]
    assert set(value["e"]) == {"d1", "x1"}  # the tool call is no rule's business
    assert value["e"]["x1"]["properties"] == {"amount": 5}  # only what rules read
    assert len(json.dumps(value)) < 1500


def test_a_revision_bump_retracts_the_old_id_when_the_trajectory_is_next_touched() -> None:
    config = example()
    current = [config]
    stage = RuleStage(lambda: current[0], JsonTable())
    stage.observe(action("d1", "object_detection", 1))
    stage.observe(action("x1", "data_extraction", 2))
    [old] = stage.drain()
    rules = tuple(
        r.model_copy(update={"revision": 2}) if r.id == "invoice_processed" else r
        for r in config.outcome_rules
    )
    current[0] = config.model_copy(update={"version": 2, "outcome_rules": rules})
    stage.observe(action("d2", "object_detection", 5))
    emitted = {o.outcome_id: o for o in stage.drain()}
    assert emitted[old.outcome_id].retracted and emitted[old.outcome_id].value == 0
    [new] = [o for o in emitted.values() if not o.retracted]
    assert new.rule_revision == 2 and new.outcome_id != old.outcome_id


def test_per_trace_cap_and_expiry_after_the_end_grace_and_when_idle() -> None:
    clock = Clock()
    state: dict[str, Any] = {}
    stage = RuleStage(example(), state, max_events_per_trace=3, end_grace_s=10, idle_s=100,
                      forget_s=1_000, expire_every_s=1, clock=clock)  # fmt: skip
    for i in range(5):
        stage.observe(llm(f"l{i}", i))
    stage.observe(action("o1", "object_detection", 1, trace="tr2"))
    stage.drain()
    assert len(state[state_key("default", "tr1")]["e"]) == 3 and stage.stats.over_cap == 2
    end = TrajectoryRecord(trace_id="tr1", status=TrajectoryStatus.SUCCESS)
    stage.observe_trajectory(end)
    clock.now += 11
    stage.drain()
    assert state[state_key("default", "tr1")] == {"x": clock.now}  # a marker is left
    assert "e" in state[state_key("default", "tr2")]
    clock.now += 100
    stage.drain()
    assert all("e" not in v for v in state.values()) and stage.stats.expired == 2
    clock.now += 1_000
    stage.drain()
    assert state == {} and stage.stats.forgotten == 2


def test_a_late_event_of_a_dropped_trajectory_asks_for_a_correction_not_a_fresh_answer() -> None:
    clock = Clock()
    state: dict[str, Any] = {}
    stage = RuleStage(example(), state, end_grace_s=10, forget_s=1_000, expire_every_s=1,
                      clock=clock)  # fmt: skip
    stage.observe(action("d1", "object_detection", 1))
    stage.observe(action("x1", "data_extraction", 2))
    stage.observe_trajectory(TrajectoryRecord(trace_id="tr1", status=TrajectoryStatus.SUCCESS))
    assert stage.drain() and stage.corrections() == []
    clock.now += 11
    stage.drain()  # expires tr1
    stage.observe(action("x2", "data_extraction", 3))  # late: alone it would be a new answer
    stage.observe(telemetry("p", "page.view", 4))  # no rule uses it: no request
    assert stage.drain() == []
    [c] = stage.corrections()
    assert (c.project, c.trace_id, c.event_id) == ("default", "tr1", "x2")
    assert stage.corrections() == [] and stage.stats.corrections == 1
    clock.now += 999  # each request restarts the marker's clock
    stage.drain()
    assert state_key("default", "tr1") in state


def test_events_without_trace_or_of_irrelevant_kinds_keep_no_state() -> None:
    state: dict[str, Any] = {}
    stage = RuleStage(example(), state)
    stage.observe(action("a", "object_detection", 1, trace=None))
    stage.observe(telemetry("b", "page.view", 2))
    assert stage.drain() == [] and state == {}


def test_user_comes_from_the_trajectory_when_events_have_none() -> None:
    stage = RuleStage(ControlPlane.model_validate(example().model_dump()), {})
    t = TrajectoryRecord(trace_id="tr1", anonymous_id="anon_9")
    stage.observe(EnrichedEvent(event=action("d", "object_detection", 1, user=None)))
    stage.observe(EnrichedEvent(event=action("x", "data_extraction", 2, user=None), trajectory=t))
    [o] = stage.drain()
    assert (o.user_id, o.anonymous_id, o.user) == (None, "anon_9", "anon_9")


def test_a_trajectory_known_before_the_first_relevant_event_comes_from_the_lookup() -> None:
    """The stream passes the join's lookup: the trajectory arrived before any state existed."""
    t = TrajectoryRecord(trace_id="tr1", user_id="u_7")
    asked: list[tuple[str, str]] = []

    def lookup(project: str, trace_id: str) -> TrajectoryRecord:
        asked.append((project, trace_id))
        return t

    stage = RuleStage(example(), {}, trajectories=lookup)
    stage.observe(action("d", "object_detection", 1, user=None))
    stage.observe(action("x", "data_extraction", 2, user=None))
    [o] = stage.drain()
    assert o.user_id == "u_7" and len(asked) == 1  # looked up once, when the state was new

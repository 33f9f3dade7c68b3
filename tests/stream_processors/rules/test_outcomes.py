from typing import Any

from meterline.schemas import (
    ActionEvent,
    ControlPlane,
    EnrichedEvent,
    Event,
    Status,
    TrajectoryRecord,
)
from meterline.schemas.control_plane import OutcomeRule
from meterline.stream_processors.rules import evaluate, evaluate_trajectory, evaluate_user
from tests.stream_processors.rules.fixtures import action, at, example, llm, telemetry


def only(rule_id: str, **changes: Any) -> ControlPlane:
    """The example config reduced to one rule, optionally changed."""
    config = example()
    [rule] = [r for r in config.outcome_rules if r.id == rule_id]
    return config.model_copy(update={"outcome_rules": (rule.model_copy(update=changes),)})


def rule_of(**raw: Any) -> ControlPlane:
    return ControlPlane(version=1, outcome_rules=(OutcomeRule.model_validate(raw),))


def test_invoice_processed_needs_both_actions_to_succeed() -> None:
    config = only("invoice_processed")
    detect, extract = action("e1", "object_detection", 1), action("e2", "data_extraction", 2)
    [outcome] = evaluate_trajectory(config, [extract, detect])
    assert (outcome.rule_name, outcome.trace_id, outcome.user_id) == (
        "Invoice processed",
        "tr1",
        "u1",
    )
    assert outcome.event_ids == ("e1", "e2")
    assert outcome.value == 1.0
    assert outcome.timestamp == at(2)
    failed = action("e2", "data_extraction", 2, status=Status.ERROR)
    assert evaluate_trajectory(config, [detect, failed]) == []
    assert (
        evaluate_trajectory(config, [detect, action("e3", "data_extraction", 3, trace="tr2")]) == []
    )


def test_one_outcome_per_trajectory_with_a_stable_id() -> None:
    config = only("invoice_processed")
    events = [action("e1", "object_detection", 1), action("e2", "data_extraction", 2)]
    [first] = evaluate_trajectory(config, events)
    more = [*events, action("e3", "object_detection", 0), action("e4", "data_extraction", 4)]
    [again] = evaluate_trajectory(config, list(reversed(more)))
    assert again.outcome_id == first.outcome_id  # late events do not duplicate the outcome
    assert again.event_ids == ("e3", "e2")


def test_outcome_id_covers_revision_not_file_version() -> None:
    events = [action("e1", "object_detection", 1), action("e2", "data_extraction", 2)]
    base = evaluate_trajectory(only("invoice_processed"), events)[0]
    bumped_file = only("invoice_processed").model_copy(update={"version": 9})
    assert evaluate_trajectory(bumped_file, events)[0].outcome_id == base.outcome_id
    revised = evaluate_trajectory(only("invoice_processed", revision=2), events)[0]
    assert revised.outcome_id != base.outcome_id
    assert len(base.outcome_id) == 32


def test_query_resolved_needs_llm_call_then_accept() -> None:
    config = only("customer_query_resolved")
    call, accept = llm("l1", 10), telemetry("t1", "user.accept", 20)
    [outcome] = evaluate_trajectory(config, [accept, call])
    assert outcome.event_ids == ("l1", "t1")
    before = telemetry("t0", "user.accept", 5)
    assert evaluate_trajectory(config, [before, call]) == []  # B then A is no match
    late = telemetry("t2", "user.accept", 10 + 3601)  # outside `within: 1h`
    assert evaluate_trajectory(config, [call, late]) == []


def test_task_completed_from_the_final_step_with_value_from_a_property() -> None:
    config = only("task_completed")
    steps = [action("w1", "workflow_step", 1, final=False), action("w2", "workflow_step", 2)]
    assert evaluate_trajectory(config, steps) == []
    final = action("w3", "workflow_step", 3, final=True, tasks=4)
    [outcome] = evaluate_trajectory(config, [*steps, final])
    assert (outcome.event_ids, outcome.value) == (("w3",), 4.0)
    no_tasks = action("w3", "workflow_step", 3, final=True, tasks="four")
    assert evaluate_trajectory(config, [no_tasks])[0].value == 1.0  # default
    assert evaluate_trajectory(config, [action("w4", "workflow_step", final="true")]) == []


def test_numeric_conditions_repeat_and_sum() -> None:
    config = only("large_invoice")
    events = [
        action("a", "data_extraction", 1, amount=999.99, currency="EUR"),
        action("b", "data_extraction", 2, amount=1000, currency="EUR"),
        action("c", "data_extraction", 3, amount=2500.5, currency="USD"),
        action("d", "data_extraction", 4, amount=5000, currency="GBP"),
        action("e", "data_extraction", 5, amount="9999", currency="EUR"),  # a string: no match
    ]
    found = evaluate_trajectory(config, events)
    assert [(o.event_ids, o.value) for o in found] == [(("b",), 1000.0), (("c",), 2500.5)]
    assert len({o.outcome_id for o in found}) == 2


def test_counts_and_sum_of_a_property() -> None:
    config = rule_of(
        id="three", name="Three pages", steps=[{"action": "ocr", "count": 3}],
        value={"path": "properties.pages", "agg": "sum"},
    )  # fmt: skip
    two = [action(f"o{i}", "ocr", i, pages=i) for i in (1, 2)]
    assert evaluate_trajectory(config, two) == []
    [outcome] = evaluate_trajectory(config, [*two, action("o3", "ocr", 3, pages=3)])
    assert (outcome.event_ids, outcome.value) == (("o1", "o2", "o3"), 6.0)


def test_sequence_of_counted_steps() -> None:
    config = rule_of(
        id="s", name="S", order="sequence",
        steps=[{"action": "a", "count": 2}, {"action": "b"}],
    )  # fmt: skip
    assert (
        evaluate_trajectory(config, [action("1", "a", 1), action("2", "b", 2), action("3", "a", 3)])
        == []
    )
    events = [action("1", "a", 1), action("2", "a", 2), action("3", "b", 3)]
    assert evaluate_trajectory(config, events)[0].event_ids == ("1", "2", "3")


def test_conditions_on_metadata_and_ops() -> None:
    config = rule_of(
        id="m", name="M",
        steps=[{"action": "a", "where": [
            {"field": "metadata.region", "op": "ne", "value": "eu"},
            {"field": "properties.tags", "op": "contains", "value": "vip"},
            {"field": "properties.debug", "op": "exists", "value": False},
            {"field": "properties.score", "op": "lt", "value": 0.5},
        ]}],
    )  # fmt: skip

    def event(**props: Any) -> ActionEvent:
        return ActionEvent(
            event_id="x", name="a", trace_id="t", timestamp=at(0),
            metadata={"region": "us"}, properties=props,
        )  # fmt: skip

    assert len(evaluate_trajectory(config, [event(tags=["vip"], score=0.1)])) == 1
    assert evaluate_trajectory(config, [event(tags=["vip"], score=0.1, debug=True)]) == []
    assert evaluate_trajectory(config, [event(tags=["x"], score=0.1)]) == []
    assert evaluate_trajectory(config, [event(tags=["vip"], score="0.1")]) == []


def test_hostile_strings_are_compared_not_run() -> None:
    code = "__import__('os').system('touch /tmp/meterline-pwned')"
    config = rule_of(
        id="h", name="H",
        steps=[{"action": code, "where": [{"field": "properties.q", "value": "1 OR 1=1"}]}],
    )  # fmt: skip
    assert evaluate_trajectory(config, [action("x", "other", q="1 OR 1=1")]) == []
    assert len(evaluate_trajectory(config, [action("x", code, q="1 OR 1=1")])) == 1


def test_enriched_events_give_user_from_trajectory() -> None:
    config = only("invoice_processed")
    trajectory = TrajectoryRecord(trace_id="tr1", user_id="u9")
    events = [
        EnrichedEvent(event=action("e1", "object_detection", 1, user=None), trajectory=trajectory),
        EnrichedEvent(event=action("e2", "data_extraction", 2, user=None)),
        EnrichedEvent(event=action("e2", "data_extraction", 2, user=None), trajectory=trajectory),
    ]
    [outcome] = evaluate_trajectory(config, events)
    assert (outcome.user, outcome.event_ids) == ("u9", ("e1", "e2"))


def test_user_scope_across_trajectories_within_a_window() -> None:
    config = only("engaged_user")
    day = 86_400
    calls = [llm("a", 0, trace="t1"), llm("b", 100, trace="t2"), llm("c", day - 1, trace="t3")]
    calls += [llm("d", 3 * day, trace="t4"), llm("e", 3 * day + 5, trace=None)]
    calls += [llm("f", 3 * day + 10, user="u2")]
    [outcome] = evaluate_user(config, calls)
    assert (outcome.user, outcome.event_ids) == ("u1", ("a", "b", "c"))
    found = evaluate_user(config, [*calls, llm("g", 4 * day - 1)])
    assert [o.event_ids for o in found] == [("a", "b", "c"), ("d", "e", "g")]
    assert found[0].outcome_id == outcome.outcome_id
    assert evaluate_trajectory(config, calls) == []


def test_evaluate_is_deterministic_over_the_example() -> None:
    events: list[Event] = [
        action("e1", "object_detection", 1), action("e2", "data_extraction", 2, amount=1200,
        currency="USD"), llm("l1", 3), telemetry("t1", "user.accept", 4),
        action("w1", "workflow_step", 5, final=True),
    ]  # fmt: skip
    found = evaluate(example(), events)
    assert [o.rule_id for o in found] == [
        "invoice_processed", "large_invoice", "customer_query_resolved", "task_completed",
    ]  # fmt: skip
    assert evaluate(example(), list(reversed(events))) == found

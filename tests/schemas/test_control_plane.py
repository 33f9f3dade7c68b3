from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from meterline.producers.llm.pricing import PriceOverrides, TokenUsage
from meterline.schemas import ControlPlane
from meterline.schemas.control_plane import Condition, EventCondition, OutcomeRule, SeatRule, Step


def rule(**overrides: Any) -> dict[str, Any]:
    return {"id": "r", "name": "R", "steps": [{"action": "a"}], **overrides}


def test_defaults_and_shorthands() -> None:
    parsed = OutcomeRule.model_validate(rule(within="90m", value=2))
    assert parsed.within == timedelta(minutes=90)
    assert parsed.value.constant == 2.0
    assert (parsed.order, parsed.scope, parsed.revision, parsed.repeat) == (
        "any", "trajectory", 1, False,
    )  # fmt: skip
    assert OutcomeRule.model_validate(rule()).value.constant == 1.0


def test_models_are_immutable() -> None:
    parsed = ControlPlane(version=1)
    with pytest.raises(ValidationError):
        parsed.version = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (rule(id="bad id"), "should match pattern"),
        (rule(steps=[]), "at least 1 item"),
        (rule(steps=[{"status": "success"}]), "needs action, event_type or kind"),
        (rule(steps=[{"event_type": "user.accept", "status": "success"}]), "event_type"),
        (rule(scope="user"), "needs a 'within'"),
        (rule(within="30 days"), "duration"),
        (rule(value={"constant": 1, "path": "properties.x"}), "exactly one"),
        (rule(value={"path": "properties.x", "step": 3}), "the rule has 1 steps"),
        (rule(order="random"), "'any' or 'sequence'"),
        (rule(typo=1), "Extra inputs"),
    ],
)
def test_invalid_outcome_rules(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        OutcomeRule.model_validate(raw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"field": "properties.x", "op": "in", "value": 1}, "needs a list"),
        ({"field": "properties.x", "op": "gt", "value": True}, "number or a string"),
        ({"field": "properties.x", "op": "eq", "value": [1]}, "scalar"),
        ({"field": "properties.x", "op": "exists", "value": "yes"}, "true or false"),
        ({"field": "properties.x", "op": "like"}, "Input should be"),
        ({"field": "properties['x']"}, "should match pattern"),
        ({"field": "__import__('os').system('ls')"}, "should match pattern"),
        ({"field": "x; DROP TABLE events; --"}, "should match pattern"),
    ],
)
def test_invalid_conditions(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Condition.model_validate(raw)


def test_event_condition_root_is_an_event_attribute() -> None:
    with pytest.raises(ValidationError, match="must start with one of"):
        EventCondition(field="__class__.mro")
    assert EventCondition(field="metadata.region").field == "metadata.region"


def test_hostile_strings_are_plain_data() -> None:
    hostile = "__import__('os').system('touch /tmp/pwned')"
    sqlish = "x'); DROP TABLE outcomes; --"
    step = Step(action=hostile, where=(EventCondition(field="properties.q", value=sqlish),))
    parsed = OutcomeRule(id="r", name=sqlish, steps=(step,))
    assert parsed.steps[0].action == hostile
    assert parsed.name == sqlish


def test_seat_rules() -> None:
    active = SeatRule(id="a", name="A", kind="active", window="30d")  # type: ignore[arg-type]
    assert active.window == timedelta(days=30)
    assert active.period == "month"
    with pytest.raises(ValidationError, match="needs a 'window'"):
        SeatRule(id="a", name="A", kind="active")
    with pytest.raises(ValidationError, match="needs 'where'"):
        SeatRule(id="a", name="A", kind="assigned")


def test_duplicate_rule_ids_rejected() -> None:
    with pytest.raises(ValidationError, match="duplicate id r"):
        ControlPlane.model_validate({"version": 1, "outcome_rules": [rule(), rule()]})


def test_price_overrides_feed_the_pricing_module() -> None:
    parsed = ControlPlane.model_validate(
        {"version": 1, "price_overrides": {"m": {"input": 1.0, "output": 2.0}}}
    )
    price = PriceOverrides.from_mapping(parsed.price_mapping()).lookup("p", "m")
    assert price is not None
    assert price.cost(TokenUsage(input_tokens=1_000_000, output_tokens=500_000)) == 2.0
    with pytest.raises(ValidationError, match="Extra inputs"):
        ControlPlane.model_validate({"version": 1, "price_overrides": {"m": {"inptu": 1}}})


def test_display_name_falls_back_to_the_action_name() -> None:
    parsed = ControlPlane(version=1, display_names={"ocr": "Text recognition"})
    assert parsed.display_name("ocr") == "Text recognition"
    assert parsed.display_name("other") == "other"

"""The price book: catalog equal to genai-prices, overrides by project and event time,
tiers, token conventions, provenance policy, unpriced, hot reload, the step's JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from genai_prices import Usage, calc_price

from meterline.schemas import ActionEvent, ActionKind, ControlPlane
from meterline.schemas.derived import Pricing
from meterline.schemas.fast_decode import decode_raw_fast
from meterline.stream_processors.pricing import PriceBook, PricingStep
from meterline.stream_processors.pricing.tokens import split

T0 = datetime(2026, 11, 10, tzinfo=UTC)


def call(model: str, provider: str = "openai", **kw: Any) -> ActionEvent:
    base: dict[str, Any] = dict(
        event_id="e1", name="llm", kind=ActionKind.LLM_CALL, model=model, provider=provider,
        timestamp=T0,
    )  # fmt: skip
    return ActionEvent(**(base | kw))


def plane(**kw: Any) -> ControlPlane:
    return ControlPlane.model_validate({"version": 1, **kw})


@pytest.mark.parametrize(
    ("provider", "model", "inp", "out", "read", "write"),
    [
        ("openai", "gpt-4o-mini", 1000, 200, 400, 0),
        ("openai", "gpt-4o-mini-2024-07-18", 5000, 10, 0, 0),
        ("anthropic", "claude-sonnet-4-5", 3000, 500, 1000, 1500),
        ("anthropic", "claude-sonnet-4-5", 250_000, 500, 1000, 0),  # long-context tier
        ("google", "gemini-2.5-pro", 300_000, 1000, 0, 0),
    ],
)
def test_catalog_prices_equal_genai_prices(
    provider: str, model: str, inp: int, out: int, read: int, write: int
) -> None:
    ev = call(model, provider, input_tokens=inp, output_tokens=out, cached_tokens=read,
              properties={"cache_write_tokens": write} if write else {})  # fmt: skip
    got = PriceBook().price(ev)
    usage = Usage(input_tokens=inp, output_tokens=out, cache_read_tokens=read,
                  cache_write_tokens=write)  # fmt: skip
    want = float(calc_price(usage, model, provider_id=provider, genai_request_timestamp=T0)
                 .total_price)  # fmt: skip
    assert got.status == "priced" and got.source == "computed"
    assert got.computed == pytest.approx(want, rel=1e-12)
    assert got.book.startswith("genai-prices@") and got.book.endswith("+cp0")


def test_unpriced_is_marked_not_zero() -> None:
    got = PriceBook().price(call("acme-llm-9000", "acme", input_tokens=10, output_tokens=5))
    assert (got.computed, got.billed, got.source, got.status) == (None, 0.0, "none", "unpriced")


MID = datetime(2026, 11, 15, tzinfo=UTC)
RULES = [
    {"model": "acme-llm", "input": 1.0, "output": 2.0, "effective_to": MID.isoformat()},
    {"model": "acme-llm", "input": 3.0, "output": 4.0, "effective_from": MID.isoformat()},
    {"model": "acme-llm", "project": "vip", "input": 0.5, "output": 0.5},
    {"model": "gpt-4o-mini", "provider": "openai", "project": "vip", "input": 0.1,
     "output": 0.2, "cached_input": 0.01},
]


def test_overrides_by_event_time_and_project() -> None:
    book = PriceBook(plane(prices=RULES))
    before = call("ACME-LLM", "acme", input_tokens=1_000_000, output_tokens=1_000_000,
                  timestamp=datetime(2026, 11, 14, 23, 59, tzinfo=UTC))  # fmt: skip
    after = before.model_copy(update={"timestamp": MID})
    assert book.price(before).computed == pytest.approx(3.0)
    assert book.price(after).computed == pytest.approx(7.0)
    vip = before.model_copy(update={"project": "vip"})
    assert book.price(vip).computed == pytest.approx(1.0)  # the project's own price first
    cached = call("gpt-4o-mini", project="vip", input_tokens=1_000_000, cached_tokens=500_000)
    assert book.price(cached).computed == pytest.approx(0.05 + 0.005)
    # another provider's gpt-4o-mini is not the override's: the catalog prices it
    other = cached.model_copy(update={"provider": "azure"})
    assert book.price(other).computed != pytest.approx(0.055)


def test_tiers_apply_to_every_token_above_the_threshold() -> None:
    rule = {"model": "long", "input": 1.0, "output": 2.0,
            "tiers": [{"above": 1000, "input": 10.0, "output": 20.0}]}  # fmt: skip
    book = PriceBook(plane(prices=[rule]))
    at = call("long", "x", input_tokens=1000, output_tokens=1000)
    assert book.price(at).computed == pytest.approx(3000 / 1e6)
    above = at.model_copy(update={"input_tokens": 1001})
    assert book.price(above).computed == pytest.approx((1001 * 10 + 1000 * 20) / 1e6)


def test_token_conventions_and_invalid_parts() -> None:
    # OpenAI: prompt_tokens include cached; reasoning is part of completion tokens
    assert split(1000, 300, 200, {"reasoning_tokens": 100}) == (800, 200, 0, 200, 100, 1000)
    # Anthropic as the SDK normalises it (inclusive) and as the API reports it
    assert split(3000, 10, 1000, {"cache_creation_input_tokens": 1500}) == (
        500, 1000, 1500, 10, 0, 3000)  # fmt: skip
    raw = {"token_convention": "anthropic", "cache_creation_input_tokens": 1500}
    assert split(500, 10, 1000, raw) == (500, 1000, 1500, 10, 0, 3000)
    assert split(100, 10, 200, {}) is None  # cached > prompt
    assert split(100, 10, 50, {"cache_write_tokens": 60}) is None
    assert split(100, 10, 0, {"reasoning_tokens": 11}) is None
    assert split(100, 10, 0, {"reasoning_tokens": "9"}) is None
    bad = call("gpt-4o-mini", input_tokens=10, cached_tokens=20, cost_usd=0.5,
               properties={"cost_source": "genai-prices"})  # fmt: skip
    got = PriceBook().price(bad)
    assert (got.computed, got.billed, got.status) == (None, 0.0, "invalid_tokens")


def test_reasoning_price_and_anthropic_cache_write_price() -> None:
    rule = {"model": "think", "input": 1.0, "output": 2.0, "reasoning": 8.0,
            "cache_write": 1.25, "cached_input": 0.1}  # fmt: skip
    book = PriceBook(plane(prices=[rule]))
    ev = call("think", "anthropic", input_tokens=400, cached_tokens=100, output_tokens=50,
              properties={"token_convention": "anthropic", "cache_creation_input_tokens": 200,
                          "reasoning_tokens": 30})  # fmt: skip
    want = (400 * 1.0 + 100 * 0.1 + 200 * 1.25 + 20 * 2.0 + 30 * 8.0) / 1e6
    assert book.price(ev).computed == pytest.approx(want)


def test_policy_chooses_the_billed_cost() -> None:
    provider_cost = call("gpt-4o-mini", project="a", input_tokens=1000, cost_usd=0.9)
    sdk_cost = provider_cost.model_copy(update={"properties": {"cost_source": "genai-prices"}})
    book = PriceBook(plane(pricing={"projects": {"b": "computed"}}))
    got = book.price(provider_cost)
    assert (got.billed, got.source) == (0.9, "provider") and got.computed is not None
    got = book.price(sdk_cost)  # the SDK's own estimate is not the provider's bill
    assert got.source == "computed" and got.billed == got.computed
    got = book.price(provider_cost.model_copy(update={"project": "b"}))
    assert got.source == "computed" and got.billed == got.computed
    unpriced = call("mystery", "acme", cost_usd=0.3, project="a")
    got = book.price(unpriced)  # the provider's cost still bills; the status stays visible
    assert (got.billed, got.source, got.status) == (0.3, "provider", "unpriced")


def test_step_hot_reloads_and_its_json_is_the_model() -> None:
    cp1 = plane(prices=[{"model": "m", "input": 1.0, "output": 1.0}])
    cp2 = ControlPlane.model_validate(
        {"version": 2, "prices": [{"model": "m", "input": 2.0, "output": 2.0}]}
    )
    current = [cp1]
    step = PricingStep(lambda: current[0])
    raw = (b'{"type":"action","kind":"llm_call","name":"x","event_id":"e1","model":"m",'
           b'"provider":"p","timestamp":"2026-11-10T00:00:00Z","input_tokens":1000000}')
    ev = decode_raw_fast(raw)
    first = step.price_json(ev)
    assert first is not None
    assert Pricing.model_validate_json(first) == step.pricing(ev)
    assert json.loads(first)["computed_cost_usd"] == 1.0
    assert json.loads(first)["price_book"].endswith("+cp1")
    current[0] = cp2
    second = json.loads(step.price_json(ev) or b"")
    assert second["computed_cost_usd"] == 2.0 and second["price_book"].endswith("+cp2")
    tool = decode_raw_fast(raw.replace(b"llm_call", b"tool_call"))
    assert step.price_json(tool) is None
    assert step.stats.by_status["priced"] == 3


def test_a_cost_over_the_wire_limit_is_flagged_not_a_sink_failure() -> None:
    huge = call("gpt-4o-mini", input_tokens=2**64 - 1)
    got = PriceBook().price(huge)
    assert (got.computed, got.billed, got.status) == (None, 0.0, "invalid_tokens")

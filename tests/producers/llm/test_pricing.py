from __future__ import annotations

import logging

import pytest

from meterline.producers.llm.pricing import ModelPrice, PriceOverrides, TokenUsage, compute_cost

MILLION = 1_000_000


def test_genai_prices_list_price_for_gpt_4o_mini() -> None:
    # gpt-4o-mini: $0.15 input, $0.60 output per million tokens.
    cost = compute_cost(
        "openai", "gpt-4o-mini", TokenUsage(input_tokens=MILLION, output_tokens=MILLION)
    )
    assert cost.source == "genai-prices"
    assert cost.usd == pytest.approx(0.75)


def test_dated_model_names_are_priced() -> None:
    usage = TokenUsage(input_tokens=1000, output_tokens=100)
    dated = compute_cost("openai", "gpt-4o-mini-2024-07-18", usage)
    assert dated.source == "genai-prices" and dated.usd > 0
    claude = compute_cost("anthropic", "claude-sonnet-4-20250514", usage)
    assert claude.source == "genai-prices"
    assert claude.usd == pytest.approx((1000 * 3 + 100 * 15) / MILLION)


def test_cached_input_is_cheaper() -> None:
    plain = compute_cost("openai", "gpt-4o-mini", TokenUsage(input_tokens=MILLION))
    cached = compute_cost(
        "openai", "gpt-4o-mini", TokenUsage(input_tokens=MILLION, cached_tokens=MILLION // 2)
    )
    # half the input at the cache-read price ($0.075): 0.075 + 0.0375
    assert cached.usd == pytest.approx(0.1125)
    assert cached.usd < plain.usd


def test_override_wins_over_genai_prices() -> None:
    overrides = PriceOverrides({"gpt-4o-mini": ModelPrice(input=1.0, output=2.0)})
    cost = compute_cost("openai", "gpt-4o-mini", TokenUsage(MILLION, MILLION), overrides)
    assert cost.usd == pytest.approx(3.0) and cost.source == "override"


def test_provider_qualified_override_wins_and_requested_model_is_tried() -> None:
    overrides = PriceOverrides(
        {
            "gpt-4o-mini": ModelPrice(input=1.0, output=1.0),
            "openai/gpt-4o-mini": ModelPrice(input=5.0, output=5.0),
        }
    )
    # The API reports a dated model; the override is keyed by the model the caller asked for.
    cost = compute_cost(
        "openai",
        "gpt-4o-mini-2024-07-18",
        TokenUsage(input_tokens=MILLION),
        overrides,
        requested_model="gpt-4o-mini",
    )
    assert cost.usd == pytest.approx(5.0) and cost.source == "override"


def test_model_price_splits_cached_and_written_input() -> None:
    price = ModelPrice(input=3.0, output=15.0, cached_input=0.3, cache_write=3.75)
    usage = TokenUsage(
        input_tokens=1000, output_tokens=10, cached_tokens=600, cache_write_tokens=300
    )
    expected = (100 * 3.0 + 600 * 0.3 + 300 * 3.75 + 10 * 15.0) / MILLION
    assert price.cost(usage) == pytest.approx(expected)
    # without cache prices, cached input costs the input price
    assert ModelPrice(input=1.0, output=0.0).cost(usage) == pytest.approx(1000 / MILLION)


def test_unknown_model_costs_zero_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="meterline.producers.llm.pricing"):
        first = compute_cost("openai", "no-such-model-xyz", TokenUsage(100, 100))
        second = compute_cost("openai", "no-such-model-xyz", TokenUsage(100, 100))
    assert (first.usd, first.source) == (0.0, "unpriced")
    assert second.source == "unpriced"
    warnings = [r for r in caplog.records if "no-such-model-xyz" in r.getMessage()]
    assert len(warnings) == 1


def test_unknown_provider_does_not_raise() -> None:
    assert compute_cost("nope", "gpt-4o-mini-nope", TokenUsage(1, 1)).source == "unpriced"


def test_overrides_from_config_mapping() -> None:
    overrides = PriceOverrides.from_mapping(
        {"anthropic/claude-x": {"input": 1, "output": 2, "cached_input": 0.1}}
    )
    assert overrides.lookup("anthropic", "claude-x") == ModelPrice(1.0, 2.0, 0.1)
    assert overrides.lookup("openai", "claude-x") is None
    with pytest.raises(ValueError, match="needs 'input' and 'output'"):
        PriceOverrides.from_mapping({"m": {"input": 1, "outptu": 2}})

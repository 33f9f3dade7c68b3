"""Cost in USD of one LLM call, from token counts.

Prices come from caller overrides first, then the ``genai-prices`` tables. A model neither
knows costs 0.0 and is flagged ``source="unpriced"`` (logged once per model): pricing runs
in the agent's hot path and never raises.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger(__name__)

CostSource = Literal["override", "genai-prices", "unpriced"]

_PER_MILLION = 1_000_000


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Tokens of one call, normalised across providers.

    ``input_tokens`` counts every prompt token, cached or not (OpenAI's ``prompt_tokens``;
    for Anthropic ``input_tokens + cache_read_input_tokens + cache_creation_input_tokens``).
    ``cached_tokens`` (read from the prompt cache) and ``cache_write_tokens`` are parts of it.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million tokens. Cached reads and cache writes default to the input price."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None

    def cost(self, usage: TokenUsage) -> float:
        cached = min(usage.cached_tokens, usage.input_tokens)
        written = min(usage.cache_write_tokens, usage.input_tokens - cached)
        uncached = usage.input_tokens - cached - written
        read_price = self.input if self.cached_input is None else self.cached_input
        write_price = self.input if self.cache_write is None else self.cache_write
        total = (
            uncached * self.input
            + cached * read_price
            + written * write_price
            + usage.output_tokens * self.output
        )
        return total / _PER_MILLION


class PriceOverrides:
    """Prices that win over ``genai-prices``, keyed by ``"provider/model"`` or ``"model"``.

    ``"openai/gpt-4o-mini"`` is tried before ``"gpt-4o-mini"``; both the model the API
    reported (often dated, ``gpt-4o-mini-2024-07-18``) and the model the caller requested
    are tried, in that order.
    """

    def __init__(self, prices: Mapping[str, ModelPrice] | None = None) -> None:
        self._prices: dict[str, ModelPrice] = dict(prices or {})

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Mapping[str, float]]) -> PriceOverrides:
        """Build from plain config, e.g. ``{"gpt-4o-mini": {"input": 0.15, "output": 0.6}}``.

        Keys per model: ``input`` and ``output`` (required), ``cached_input``, ``cache_write``.
        Raises ``ValueError`` on a malformed entry (configuration time, not the hot path).
        """
        prices: dict[str, ModelPrice] = {}
        for model, entry in raw.items():
            unknown = set(entry) - {"input", "output", "cached_input", "cache_write"}
            if unknown or "input" not in entry or "output" not in entry:
                raise ValueError(
                    f"price override {model!r}: needs 'input' and 'output' "
                    f"(optional 'cached_input', 'cache_write'), got {sorted(entry)}"
                )
            prices[model] = ModelPrice(**{k: float(v) for k, v in entry.items()})
        return cls(prices)

    def lookup(self, provider: str, *models: str | None) -> ModelPrice | None:
        for model in models:
            if not model:
                continue
            price = self._prices.get(f"{provider}/{model}") or self._prices.get(model)
            if price is not None:
                return price
        return None

    def __len__(self) -> int:
        return len(self._prices)


@dataclass(frozen=True, slots=True)
class Cost:
    usd: float
    source: CostSource


_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def compute_cost(
    provider: str,
    model: str,
    usage: TokenUsage,
    overrides: PriceOverrides | None = None,
    *,
    requested_model: str | None = None,
) -> Cost:
    """Cost of one call. Never raises: an unknown model costs 0.0 with ``source="unpriced"``."""
    if overrides is not None:
        price = overrides.lookup(provider, model, requested_model)
        if price is not None:
            return Cost(price.cost(usage), "override")
    for candidate in dict.fromkeys(m for m in (model, requested_model) if m):
        usd = _genai_price(provider, candidate, usage)
        if usd is not None:
            return Cost(usd, "genai-prices")
    _warn_unpriced(provider, model)
    return Cost(0.0, "unpriced")


def _genai_price(provider: str, model: str, usage: TokenUsage) -> float | None:
    try:
        from genai_prices import Usage, calc_price
    except ImportError:
        return None
    try:
        calc = calc_price(
            Usage(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_read_tokens=usage.cached_tokens,
                cache_write_tokens=usage.cache_write_tokens,
            ),
            model,
            provider_id=provider,
        )
    except LookupError:
        return None
    except Exception:  # a pricing bug must not reach the agent
        log.debug("genai-prices failed for %s/%s", provider, model, exc_info=True)
        return None
    return float(calc.total_price)


def _warn_unpriced(provider: str, model: str) -> None:
    key = (provider, model)
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    log.warning(
        "no price for %s/%s: cost recorded as 0.0; add a PriceOverrides entry", provider, model
    )

"""The catalog: the genai-prices data bundled with the pinned package version (never its
auto-update), compiled to :class:`~meterline.stream_processors.pricing.rates.Schedule` segments.

A model's dated prices (``ConditionalPrice`` with a ``StartDateConstraint``, a UTC date)
become segments tried latest first, as genai-prices does; prices by time of day
(off-peak) are not compiled: such a model is priced at its always-valid price, else its
first one. Prices of other modalities (audio, image, video) are not read: events carry
text token counts only.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from importlib.metadata import version
from typing import Any

from meterline.stream_processors.pricing.rates import FOREVER, NEVER, Rate, Segment, TieredRate

log = logging.getLogger(__name__)

SOURCE = "genai-prices"
_KEYS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok",
         "output_reasoning_mtok")  # fmt: skip


def catalog_version() -> str:
    """The installed (pinned, see pyproject.toml) genai-prices version."""
    return version("genai-prices")


@cache
def _snapshot() -> Any:
    from genai_prices.data import providers
    from genai_prices.data_snapshot import DataSnapshot

    return DataSnapshot(providers=providers, from_auto_update=False)


def find_model(provider: str | None, model: str) -> Any | None:
    """The genai-prices ``ModelInfo`` of ``model`` (at ``provider`` if given), or None."""
    try:
        _, info = _snapshot().find_provider_model(model, None, provider or None, None)
    except LookupError:
        if not provider:
            return None
        return find_model(None, model)  # a provider genai-prices does not know by that id
    return info


def catalog_segments(provider: str | None, model: str) -> tuple[Segment, ...]:
    """The model's catalog prices as segments (empty: the catalog cannot price it)."""
    info = find_model(provider, model)
    if info is None:
        return ()
    prices = info.prices
    if not isinstance(prices, list):
        rate = compile_price(prices)
        return () if rate is None else (Segment(NEVER, FOREVER, rate, SOURCE),)
    segments: list[Segment] = []
    for conditional in reversed(prices):  # the last active one wins
        rate = compile_price(conditional.prices)
        constraint = conditional.constraint
        if rate is None:
            continue
        if constraint is None:
            segments.append(Segment(NEVER, FOREVER, rate, SOURCE))
        elif hasattr(constraint, "start_date"):
            d = constraint.start_date
            start = datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()
            segments.append(Segment(start, FOREVER, rate, SOURCE))
    first = compile_price(prices[0].prices) if prices else None
    if first is not None:  # genai-prices: no active constraint -> the first price
        segments.append(Segment(NEVER, FOREVER, first, SOURCE))
    return tuple(segments)


def compile_price(price: Any) -> TieredRate | None:
    """A genai-prices ``ModelPrice`` as a :class:`TieredRate`; None without an input and
    an output price (not a text model)."""
    values = {k: getattr(price, k, None) for k in _KEYS}
    if values["input_mtok"] is None or values["output_mtok"] is None:
        return None
    starts = sorted({t.start for v in values.values() if _tiered(v) for t in v.tiers})  # type: ignore[union-attr]
    base = _rate({k: _at(v, None) for k, v in values.items()})
    tiers = tuple((s, _rate({k: _at(v, s) for k, v in values.items()})) for s in starts)
    return TieredRate(base, tiers)


def _tiered(value: Any) -> bool:
    return value is not None and hasattr(value, "tiers")


def _at(value: Any, start: int | None) -> Decimal | None:
    """The price of ``value`` for a prompt just above ``start`` (None: the base)."""
    if value is None or not _tiered(value):
        return value  # type: ignore[no-any-return]
    price = value.base
    if start is not None:
        for tier in value.tiers:
            if tier.start <= start:
                price = tier.price
    return price  # type: ignore[no-any-return]


def _rate(v: dict[str, Decimal | None]) -> Rate:
    def f(key: str) -> float | None:
        x = v[key]
        return None if x is None else float(x)

    return Rate.per_million(
        f("input_mtok") or 0.0, f("output_mtok") or 0.0, f("cache_read_mtok"),
        f("cache_write_mtok"), f("output_reasoning_mtok"),
    )  # fmt: skip

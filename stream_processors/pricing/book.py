"""The price book: control-plane overrides on the genai-prices catalog, one version.

Contract: :meth:`PriceBook.price` never raises and gives the same answer for the same
event and book version, whether the stream or ``meterline reprice`` asks (both call it).
The event time decides which price applies. A (project, provider, model) is compiled once
into a :class:`~stream_processors.pricing.rates.Schedule` and cached (bounded).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from schemas.control_plane import ControlPlane, CostPolicy
from schemas.derived import CostSource, PriceStatus
from stream_processors.pricing.catalog import catalog_segments, catalog_version
from stream_processors.pricing.overrides import Overrides
from stream_processors.pricing.rates import Schedule
from stream_processors.pricing.tokens import split

#: ``properties.cost_source`` values of a cost the SDK computed itself (not the provider's).
SDK_COST_SOURCES = frozenset({"genai-prices", "override", "unpriced"})
_MAX_CACHED = 100_000
_MISS = object()


class Priced(NamedTuple):
    """The book's answer for one call (:class:`schemas.derived.Pricing`'s fields)."""

    computed: float | None
    billed: float
    source: CostSource
    status: PriceStatus
    book: str


def book_version(config: ControlPlane | None) -> str:
    """``genai-prices@<version>+cp<control-plane version>`` (``cp0``: no control plane)."""
    return f"genai-prices@{catalog_version()}+cp{config.version if config else 0}"


class PriceBook:
    """One version of the book (rebuild it for a new control plane)."""

    def __init__(self, config: ControlPlane | None = None) -> None:
        self.config = config
        self.version = book_version(config)
        self._overrides = Overrides(config)
        self._settings = config.pricing if config is not None else None
        self._schedules: dict[tuple[str, str | None, str | None], Schedule | None] = {}

    def schedule(self, project: str, provider: str | None, model: str | None) -> Schedule | None:
        key = (project, provider, model)
        found = self._schedules.get(key, _MISS)
        if found is not _MISS:
            return found  # type: ignore[return-value]
        if len(self._schedules) >= _MAX_CACHED:
            self._schedules.clear()
        m, p = (model or "").lower(), (provider or "").lower()
        segments = self._overrides.segments(project, p, m) + catalog_segments(p or None, m)
        built = Schedule(segments) if segments else None
        self._schedules[key] = built
        return built

    def policy(self, project: str) -> CostPolicy:
        s = self._settings
        return "provider_else_computed" if s is None else s.policy_for(project)

    def price(self, ev: Any) -> Priced:
        """Price one llm_call (an ``ActionEvent`` or its msgspec twin) at its event time."""
        return Priced(*self.price_fields(ev), self.version)

    def price_fields(self, ev: Any) -> tuple[float | None, float, CostSource, PriceStatus]:
        """:meth:`price` as a plain tuple (computed, billed, source, status): the hot path."""
        computed: float | None = None
        props = ev.properties
        parts = split(ev.input_tokens, ev.output_tokens, ev.cached_tokens, props)
        if parts is None:
            status: PriceStatus = "invalid_tokens"
        else:
            project = ev.project
            schedule = self._schedules.get((project, ev.provider, ev.model), _MISS)
            if schedule is _MISS:
                schedule = self.schedule(project, ev.provider, ev.model)
            segment = None
            if schedule is not None:
                segment = schedule.at(ev.timestamp.timestamp())  # type: ignore[attr-defined]
            if segment is None:
                status = "unpriced"
            else:
                status, computed = "priced", segment.rate.cost(parts)
        reported = ev.cost_usd
        if reported > 0 and props.get("cost_source") not in SDK_COST_SOURCES and (
            self.policy(ev.project) == "provider_else_computed"
        ):
            return computed, reported, "provider", status
        if computed is None:
            return None, 0.0, "none", status
        return computed, computed, "computed", status

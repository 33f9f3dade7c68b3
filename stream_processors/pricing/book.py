"""The price book: control-plane overrides on the genai-prices catalog, one version.

Contract: :meth:`PriceBook.price` never raises and gives the same answer for the same
event and book version, whether the stream or ``meterline reprice`` asks (both call it).
The event time decides which price applies. A (project, provider, model) is compiled once
into a :class:`~meterline.stream_processors.pricing.rates.Schedule` and cached (bounded).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from meterline.schemas.control_plane import ControlPlane, CostPolicy
from meterline.schemas.derived import CostSource, PriceStatus
from meterline.schemas.events import MAX_COST_USD
from meterline.stream_processors.pricing.catalog import catalog_segments, catalog_version
from meterline.stream_processors.pricing.overrides import Overrides
from meterline.stream_processors.pricing.rates import Schedule, Segment
from meterline.stream_processors.pricing.tokens import split

#: ``properties.cost_source`` values of a cost the SDK computed itself (not the provider's).
SDK_COST_SOURCES = frozenset({"genai-prices", "override", "unpriced"})
_MAX_CACHED = 100_000


class Priced(NamedTuple):
    """The book's answer for one call (:class:`meterline.schemas.derived.Pricing`'s fields)."""

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
        #: per (project, provider, model): the schedule and its time-invariant segment
        self._schedules: dict[
            tuple[str, str | None, str | None], tuple[Schedule | None, Segment | None]
        ] = {}
        #: True when every project bills the provider's cost if present (the default)
        self._provider_first = self._settings is None or (
            self._settings.policy == "provider_else_computed"
            and all(p == "provider_else_computed" for p in self._settings.projects.values())
        )

    def schedule(self, project: str, provider: str | None, model: str | None) -> Schedule | None:
        return self._compiled(project, provider, model)[0]

    def _compiled(
        self, project: str, provider: str | None, model: str | None
    ) -> tuple[Schedule | None, Segment | None]:
        key = (project, provider, model)
        found = self._schedules.get(key)
        if found is not None:
            return found
        if len(self._schedules) >= _MAX_CACHED:
            self._schedules.clear()
        m, p = (model or "").lower(), (provider or "").lower()
        segments = self._overrides.segments(project, p, m) + catalog_segments(p or None, m)
        built = Schedule(segments) if segments else None
        entry = (built, built.always if built is not None else None)
        self._schedules[key] = entry
        return entry

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
            entry = self._schedules.get((ev.project, ev.provider, ev.model))
            if entry is None:
                entry = self._compiled(ev.project, ev.provider, ev.model)
            schedule, segment = entry
            if segment is None and schedule is not None:
                segment = schedule.at(ev.timestamp.timestamp())
            if segment is None:
                status = "unpriced"
            else:
                status, computed = "priced", segment.rate.cost(parts)
                if computed > MAX_COST_USD:  # absurd counts: flagged, never a sink failure
                    status, computed = "invalid_tokens", None
        reported = ev.cost_usd
        if reported > 0 and props.get("cost_source") not in SDK_COST_SOURCES and (
            self._provider_first or self.policy(ev.project) == "provider_else_computed"
        ):
            return computed, reported, "provider", status
        if computed is None:
            return None, 0.0, "none", status
        return computed, computed, "computed", status

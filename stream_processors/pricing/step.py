"""The pricing step of the processor chain: every ``llm_call`` leaves with a ``pricing``
object (:class:`meterline.schemas.derived.Pricing`) from the running price book.

Hot reload: ``config`` is a callable returning the running control plane (the watcher's
``current``); the book is rebuilt when that object changes, i.e. once per adopted version,
and read once per event (one attribute compare). Cost per call: a dict lookup of the
compiled schedule, the token split and a few multiplications (bench/bench_processor.py
prints it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from meterline.schemas.control_plane import ControlPlane
from meterline.schemas.derived import Pricing
from meterline.schemas.events import ActionKind
from meterline.stream_processors.pricing.book import PriceBook, Priced

_LLM_CALL = ActionKind.LLM_CALL
ConfigSource = Callable[[], ControlPlane | None]


class PricingStats:
    """Plain counters read by the metrics collector (no Prometheus call per event):
    ``by_status`` (priced, unpriced, invalid_tokens) of the calls priced."""

    __slots__ = ("by_status",)

    def __init__(self) -> None:
        self.by_status = dict.fromkeys(("priced", "unpriced", "invalid_tokens"), 0)

    @property
    def unpriced(self) -> int:
        return self.by_status["unpriced"]


def _tails(version: str) -> dict[tuple[str, str], str]:
    """The end of the ``pricing`` JSON by (source, status); the costs go before it as
    their ``repr`` (the shortest round-trip form)."""
    book = json.dumps(version)
    return {
        (source, status): f'"cost_source":"{source}","price_status":"{status}",'
        f'"price_book":{book}}}'
        for source in ("provider", "computed", "none")
        for status in ("priced", "unpriced", "invalid_tokens")
    }


class PricingStep:
    """Prices llm_calls; anything else passes unpriced (``price_json`` returns None)."""

    def __init__(self, config: ConfigSource | ControlPlane | None = None) -> None:
        self._source: ConfigSource = config if callable(config) else (lambda: config)
        self.stats = PricingStats()
        self._refresh(self._source())

    def _refresh(self, config: ControlPlane | None) -> None:
        self._config = config
        self.book = PriceBook(config)
        self._tails = _tails(self.book.version)
        self._fields = self.book.price_fields

    def price(self, ev: Any) -> Priced:
        config = self._source()
        if config is not self._config:
            self._refresh(config)
        priced = self.book.price(ev)
        self.stats.by_status[priced.status] += 1
        return priced

    def price_json(self, ev: Any) -> bytes | None:
        """The ``pricing`` JSON of an llm_call, None for any other event."""
        if getattr(ev, "kind", None) is not _LLM_CALL:
            return None
        config = self._source()
        if config is not self._config:
            self._refresh(config)
        computed, billed, source, status = self._fields(ev)
        self.stats.by_status[status] += 1
        tail = self._tails[(source, status)]
        if computed is None:
            return f'{{"computed_cost_usd":null,"billed_cost_usd":{billed!r},{tail}'.encode()
        return f'{{"computed_cost_usd":{computed!r},"billed_cost_usd":{billed!r},{tail}'.encode()

    def pricing(self, ev: Any) -> Pricing | None:
        """The same as a model (the processor's sweep path)."""
        if getattr(ev, "kind", None) != _LLM_CALL:
            return None
        p = self.price(ev)
        return Pricing(
            computed_cost_usd=p.computed, billed_cost_usd=p.billed, cost_source=p.source,
            price_status=p.status, price_book=p.book,
        )  # fmt: skip

"""Control-plane prices (``prices:``) compiled to schedule segments per project."""

from __future__ import annotations

from meterline.schemas.control_plane import ControlPlane, PriceRule, TokenPrices
from meterline.stream_processors.pricing.rates import FOREVER, NEVER, Rate, Segment, TieredRate

#: Key of a rule that applies to every project.
ALL_PROJECTS = "*"


def rate_of(p: TokenPrices) -> Rate:
    return Rate.per_million(p.input, p.output, p.cached_input, p.cache_write, p.reasoning)


def compile_rule(rule: PriceRule) -> Segment:
    start = rule.effective_from.timestamp() if rule.effective_from else NEVER
    end = rule.effective_to.timestamp() if rule.effective_to else FOREVER
    tiers = tuple((t.above, rate_of(t)) for t in rule.tiers)
    source = f"override:{rule.project or ALL_PROJECTS}"
    return Segment(start, end, TieredRate(rate_of(rule), tiers), source)


class Overrides:
    """The file's price rules by (project or ``*``, model lowercased), each list in file
    order; a rule with a ``provider`` matches only events of that provider."""

    def __init__(self, config: ControlPlane | None) -> None:
        self._rules: dict[tuple[str, str], list[tuple[str | None, Segment]]] = {}
        for rule in config.prices if config is not None else ():
            key = (rule.project or ALL_PROJECTS, rule.model.lower())
            provider = rule.provider.lower() if rule.provider else None
            self._rules.setdefault(key, []).append((provider, compile_rule(rule)))

    def segments(self, project: str, provider: str, model: str) -> tuple[Segment, ...]:
        """The project's own rules first, then those of every project."""
        found: list[Segment] = []
        for scope in (project, ALL_PROJECTS):
            for want, segment in self._rules.get((scope, model), ()):
                if want is None or want == provider:
                    found.append(segment)
        return tuple(found)

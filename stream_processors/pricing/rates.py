"""Compiled prices: a :class:`Rate` (USD per token, by token class) with its tiers, and a
:class:`Schedule` of rates by event time. Everything here is plain floats and tuples, built
once per (project, provider, model) and price-book version, so pricing a call is a few
comparisons and multiplications."""

from __future__ import annotations

from dataclasses import dataclass

from meterline.stream_processors.pricing.tokens import Parts

PER_MILLION = 1_000_000.0
#: Event times (epoch seconds) below and above every schedule's bounds.
NEVER, FOREVER = float("-inf"), float("inf")


@dataclass(frozen=True, slots=True)
class Rate:
    """USD per *token* (not per million) of each token class."""

    input: float
    cache_read: float
    cache_write: float
    output: float
    reasoning: float

    @classmethod
    def per_million(
        cls, input: float, output: float, cache_read: float | None = None,
        cache_write: float | None = None, reasoning: float | None = None,
    ) -> Rate:  # fmt: skip
        """From USD per million tokens; cache prices default to ``input``, reasoning to
        ``output`` (what the providers bill when they publish no separate price)."""
        return cls(
            input / PER_MILLION,
            (input if cache_read is None else cache_read) / PER_MILLION,
            (input if cache_write is None else cache_write) / PER_MILLION,
            output / PER_MILLION,
            (output if reasoning is None else reasoning) / PER_MILLION,
        )

    def cost(self, p: Parts) -> float:
        return (
            p[0] * self.input + p[1] * self.cache_read + p[2] * self.cache_write
            + p[3] * self.output + p[4] * self.reasoning
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class TieredRate:
    """``base`` up to the first tier; a call whose prompt has more than ``above`` tokens
    pays that tier's rate on all of its tokens. ``tiers`` ascending by ``above``."""

    base: Rate
    tiers: tuple[tuple[int, Rate], ...] = ()

    def cost(self, p: Parts) -> float:
        rate = self.base
        if self.tiers:
            for above, tier in self.tiers:
                if p[5] > above:
                    rate = tier
                else:
                    break
        return (
            p[0] * rate.input + p[1] * rate.cache_read + p[2] * rate.cache_write
            + p[3] * rate.output + p[4] * rate.reasoning
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Segment:
    """A rate in force for events with ``start <= t < end`` (epoch seconds)."""

    start: float
    end: float
    rate: TieredRate
    source: str  # "override:<project or *>" or "genai-prices"


@dataclass(frozen=True, slots=True)
class Schedule:
    """The segments that may price one (project, provider, model), by priority: the first
    whose interval holds the event time wins (overrides of the project, overrides of every
    project, then the catalog's own dated prices)."""

    segments: tuple[Segment, ...]

    @property
    def always(self) -> Segment | None:
        """The segment that prices every event time when the first one does (no dated
        price before it), else None: the hot path then skips reading the event time."""
        first = self.segments[0] if self.segments else None
        if first is not None and first.start == NEVER and first.end == FOREVER:
            return first
        return None

    def at(self, t: float) -> Segment | None:
        for s in self.segments:
            if s.start <= t < s.end:
                return s
        return None

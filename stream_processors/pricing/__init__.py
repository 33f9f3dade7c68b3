"""Server-side pricing of llm_calls: one versioned price book (docs/control-plane.md,
"Prices"). One step per module: ``tokens`` (token parts checked against totals),
``rates`` (compiled prices), ``catalog`` (genai-prices, pinned), ``overrides`` (the
control plane's prices), ``book`` (the two together, one version), ``step`` (the
processor's pricing step)."""

from meterline.stream_processors.pricing.book import PriceBook, Priced, book_version
from meterline.stream_processors.pricing.step import PricingStep

__all__ = ["PriceBook", "Priced", "PricingStep", "book_version"]

"""Per-key token buckets (one token per request)."""

from __future__ import annotations

import math
import time


class TokenBuckets:
    """``rate_per_s`` tokens a second up to ``burst``, one bucket per key id.

    Not thread-safe: used from the gateway's event loop only. Bounded by the number of keys.
    """

    def __init__(self, rate_per_s: float, burst: float) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate limit: rate_per_s must be > 0 and burst >= 1")
        self.rate = rate_per_s
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key_id: str, now: float | None = None) -> int:
        """0 if a request of ``key_id`` may pass (its token taken), else the whole seconds
        to wait before retrying (the ``Retry-After``)."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(key_id, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1:
            self._buckets[key_id] = (tokens - 1, now)
            return 0
        self._buckets[key_id] = (tokens, now)
        return max(1, math.ceil((1 - tokens) / self.rate))

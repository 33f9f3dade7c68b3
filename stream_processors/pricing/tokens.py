"""Token semantics: an ``llm_call``'s counts split into the classes that have a price, with
the sub-totals checked against their totals.

Conventions (``properties.token_convention``):

* ``inclusive`` (default; meterline's columns, what the SDK writes for every provider and
  OpenAI's own ``prompt_tokens``): ``input_tokens`` counts every prompt token, and
  ``cached_tokens`` (cache reads) and the cache writes are parts of it.
* ``anthropic`` (Anthropic's raw ``usage``): ``input_tokens`` excludes cache reads
  (``cached_tokens``) and cache writes, which come on top of it.

Cache writes are ``properties.cache_write_tokens`` (else
``properties.cache_creation_input_tokens``); reasoning tokens are
``properties.reasoning_tokens`` and are part of ``output_tokens`` for both providers
(OpenAI's ``completion_tokens_details.reasoning_tokens``, Anthropic's thinking is billed
as output). A record whose parts exceed their total, or whose parts are not
non-negative integers, is *invalid*: :func:`split` returns None and the call is flagged
``invalid_tokens`` instead of being billed.
"""

from __future__ import annotations

from typing import Any

#: Disjoint token counts of one call, each billed at its own price: (uncached input,
#: cache read, cache write, output without reasoning, reasoning, prompt). ``prompt`` is
#: every input token (the tier threshold is compared with it). A plain tuple: the hot path
#: builds one per call.
Parts = tuple[int, int, int, int, int, int]


def _count(value: Any) -> int | None:
    """A present count: a non-negative int (bool refused); None when it is not one."""
    if type(value) is not int or value < 0:
        return None
    return value  # type: ignore[no-any-return]


def split(
    input_tokens: int, output_tokens: int, cached_tokens: int, props: dict[str, Any]
) -> Parts | None:
    """The billed parts of one call, or None when its counts contradict each other."""
    write = reasoning = 0
    inclusive = True
    if props:
        w = props.get("cache_write_tokens")
        if w is None:
            w = props.get("cache_creation_input_tokens")
        r = props.get("reasoning_tokens")
        convention = props.get("token_convention")
        if w is not None or r is not None or convention is not None:
            write = 0 if w is None else _count(w)  # type: ignore[assignment]
            reasoning = 0 if r is None else _count(r)  # type: ignore[assignment]
            if write is None or reasoning is None or reasoning > output_tokens:
                return None
            if convention == "anthropic":
                inclusive = False
            elif convention not in (None, "inclusive"):
                return None
    if inclusive:
        uncached = input_tokens - cached_tokens - write
        if uncached < 0:
            return None
        return (uncached, cached_tokens, write, output_tokens - reasoning, reasoning,
                input_tokens)  # fmt: skip
    prompt = input_tokens + cached_tokens + write
    return (input_tokens, cached_tokens, write, output_tokens - reasoning, reasoning, prompt)

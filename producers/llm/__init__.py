"""Automatic LLM call tracking for the official ``openai`` and ``anthropic`` clients.

Each call becomes one ``ActionEvent(kind="llm_call")`` handed to ``emit``: model, provider,
tokens (input, output, cached), cost in USD, latency, status and error. Prompts and
completions are not recorded unless ``capture_content=True``. See
``docs/llm-instrumentation.md``.

Importable without the clients: ``instrument_openai`` / ``instrument_anthropic`` import
their client on first use and name the extra (``meterline[llm]``) when it is missing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from meterline.producers.llm.context import LLMContext, current_context, llm_context
from meterline.producers.llm.pricing import (
    Cost,
    ModelPrice,
    PriceOverrides,
    TokenUsage,
    compute_cost,
)
from meterline.producers.llm.recorder import Emit, LLMStats, Recorder, sdk_emit, stats

if TYPE_CHECKING:
    from meterline.producers.llm.anthropic import instrument_anthropic
    from meterline.producers.llm.openai import instrument_openai

__all__ = [
    "Cost",
    "Emit",
    "LLMContext",
    "LLMStats",
    "ModelPrice",
    "PriceOverrides",
    "TokenUsage",
    "compute_cost",
    "current_context",
    "instrument_all",
    "instrument_anthropic",
    "instrument_openai",
    "llm_context",
    "sdk_emit",
    "stats",
    "uninstrument",
]

_PROVIDERS = ("openai", "anthropic")


def __getattr__(name: str) -> Any:
    # The provider modules import their client library: load them on first use only.
    if name == "instrument_openai":
        from meterline.producers.llm.openai import instrument_openai

        return instrument_openai
    if name == "instrument_anthropic":
        from meterline.producers.llm.anthropic import instrument_anthropic

        return instrument_anthropic
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def instrument_all(
    emit: Emit = sdk_emit,
    *,
    prices: PriceOverrides | None = None,
    capture_content: bool = False,
    max_summary_chars: int = 200,
) -> list[str]:
    """Patch the client libraries' resource classes: every client, existing or future, records.

    Opt-in and process-wide; undo with :func:`uninstrument` (no argument). Providers whose
    client is not installed are skipped; returns the providers patched. Ids come from
    ``llm_context``. A client also instrumented per instance records each call once.
    """
    return [
        provider for provider in _PROVIDERS
        if instrument_provider(provider, emit, prices=prices, capture_content=capture_content,
                               max_summary_chars=max_summary_chars)
    ]


def instrument_provider(
    provider: str,
    emit: Emit = sdk_emit,
    *,
    prices: PriceOverrides | None = None,
    capture_content: bool = False,
    max_summary_chars: int = 200,
) -> bool:
    """:func:`instrument_all` for one provider (``"openai"`` or ``"anthropic"``); False when
    its client library is not installed."""
    try:
        module = importlib.import_module(f"meterline.producers.llm.{provider}")
    except ImportError:
        return False
    recorder = Recorder(emit, provider, prices, LLMContext(), capture_content, max_summary_chars)
    for cls in module.resource_classes():
        module.patch_resource(cls, recorder)
    return True


def uninstrument(client: Any = None) -> bool:
    """Undo instrumentation of ``client``, or of the classes (:func:`instrument_all`) if None.

    Returns False when there was nothing to undo.
    """
    from meterline.producers.llm import patching

    if client is not None:
        module_name = type(client).__module__.split(".")[0]
        if module_name not in _PROVIDERS:
            return False
        module = importlib.import_module(f"meterline.producers.llm.{module_name}")
        undo = getattr(module, f"uninstrument_{module_name}")
        return bool(undo(client))
    undone = False
    for provider in _PROVIDERS:
        try:
            module = importlib.import_module(f"meterline.producers.llm.{provider}")
        except ImportError:
            continue
        for cls in module.resource_classes():
            for attr in ("create", "stream"):
                undone = patching.unpatch(cls, attr) or undone
    return undone

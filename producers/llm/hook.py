"""Patch an LLM client library when the application imports it (``init``'s auto-instrument).

Importing ``openai`` / ``anthropic`` takes seconds; ``meterline.init`` must not pay it
for an
agent that never uses them. A library already imported is patched at once; one that is
installed but not imported gets a ``sys.meta_path`` finder that patches it right after its
own import finishes (the application's import, not ours).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import sys
import threading
from collections.abc import Sequence
from types import ModuleType

log = logging.getLogger("producers")

_pending: set[str] = set()
_lock = threading.Lock()


def instrument_when_imported(provider: str) -> bool:
    """Patch ``provider`` now if imported, else when it is; False if it is not installed."""
    if provider in sys.modules:
        return _patch(provider)
    if importlib.util.find_spec(provider) is None:
        return False
    with _lock:
        _pending.add(provider)
        if not any(isinstance(f, _PostImportFinder) for f in sys.meta_path):
            sys.meta_path.insert(0, _PostImportFinder())
    return True


def _patch(provider: str) -> bool:
    from meterline.producers.llm import instrument_provider

    try:
        return instrument_provider(provider)
    except Exception as exc:  # never break the application's import
        log.warning("meterline: could not instrument %s: %r", provider, exc)
        return False


class _PostImportFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _pending:
            return None
        with _lock:
            _pending.discard(fullname)  # once; also keeps the lookup below from recursing
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return None
        loader, run = spec.loader, spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            sys.modules.setdefault(fullname, module)
            _patch(fullname)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec

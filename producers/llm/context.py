"""Who and what an LLM call belongs to: ``llm_context(trace_id=..., user_id=...)``.

The context is a ``ContextVar``: it follows threads' and asyncio tasks' own context, and is
captured when a call starts, so a stream consumed later still carries the ids of the block
that opened it. Nested blocks inherit the fields they do not set.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True, slots=True)
class LLMContext:
    """Attribution fields copied onto every LLM event. ``None`` means "inherit"."""

    project: str | None = None
    trace_id: str | None = None
    session_id: str | None = None
    user_id: str | None = None
    anonymous_id: str | None = None
    agent_id: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def merged(self, inner: LLMContext) -> LLMContext:
        """``inner``'s set fields win; metadata dicts are merged (inner keys win)."""
        changes: dict[str, Any] = {
            f.name: getattr(inner, f.name)
            for f in fields(self)
            if f.name != "metadata" and getattr(inner, f.name) is not None
        }
        if inner.metadata:
            changes["metadata"] = MappingProxyType({**self.metadata, **inner.metadata})
        return replace(self, **changes)


_EMPTY = LLMContext()
_current: ContextVar[LLMContext] = ContextVar("meterline_llm_context", default=_EMPTY)


def current_context() -> LLMContext:
    return _current.get()


@contextmanager
def llm_context(
    *,
    project: str | None = None,
    trace_id: str | None = None,
    session_id: str | None = None,
    user_id: str | None = None,
    anonymous_id: str | None = None,
    agent_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Iterator[LLMContext]:
    """Attribute the LLM calls made inside the block. Wins over ``instrument_*`` defaults."""
    ctx = _current.get().merged(
        LLMContext(
            project=project,
            trace_id=trace_id,
            session_id=session_id,
            user_id=user_id,
            anonymous_id=anonymous_id,
            agent_id=agent_id,
            metadata=MappingProxyType(dict(metadata or {})),
        )
    )
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)

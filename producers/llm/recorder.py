"""Turn one observed LLM call into one ``ActionEvent(kind=llm_call)`` and hand it to ``emit``.

Contract: nothing here raises into the agent. A failing ``emit`` or a response the
observers cannot read is counted in :class:`LLMStats` and logged; the agent's call result
or exception passes through unchanged. Each :class:`Call` emits at most once.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from meterline.producers import current
from meterline.producers.llm.context import LLMContext, current_context
from meterline.producers.llm.pricing import PriceOverrides, TokenUsage, compute_cost
from meterline.schemas import ActionEvent
from meterline.schemas.events import ActionKind, Status

log = logging.getLogger(__name__)

#: Receives each LLM event. Must not block (the SDK's emit only enqueues). Returning False
#: means the event was dropped (counted in ``emit_failed``); None or True, accepted.
Emit = Callable[[ActionEvent], bool | None]


def sdk_emit(event: ActionEvent) -> bool:
    """The default ``emit``: the process-wide SDK client (``meterline.init``), looked up
    per
    event so instrumenting before ``init`` works. Enqueue-only: never waits on the broker.
    False when the client dropped the event (queue full, not configured)."""
    return current.get_client().record(event)


_MAX_ERROR_CHARS = 1000


@dataclass
class LLMStats:
    """In-process counters. ``emit_failed`` and ``observe_failed`` should stay at 0."""

    emitted: int = 0
    emit_failed: int = 0  # emit raised, or the event could not be built
    observe_failed: int = 0  # a response or stream event could not be read
    unpriced: int = 0  # events recorded with cost 0.0 because no price was known
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def incr(self, name: str) -> int:
        with self._lock:
            value: int = getattr(self, name) + 1
            setattr(self, name, value)
            return value


#: Counters shared by every instrumented client in the process.
stats = LLMStats()


@dataclass(frozen=True)
class Recorder:
    """Everything an instrumented client needs to record its calls."""

    emit: Emit
    provider: str
    prices: PriceOverrides | None = None
    defaults: LLMContext = field(default_factory=LLMContext)
    capture_content: bool = False
    max_summary_chars: int = 200

    def start(self, name: str, requested_model: object, *, stream: bool = False) -> Call:
        model = requested_model if isinstance(requested_model, str) else None
        ctx = self.defaults.merged(current_context())
        return Call(self, name, model, ctx, stream=stream)

    def summary(self, text: object) -> str | None:
        if not self.capture_content or not isinstance(text, str):
            return None
        return text[: self.max_summary_chars]


class Call:
    """One in-flight LLM call. Observers fill ``model``, ``usage`` and ``properties``."""

    def __init__(
        self, recorder: Recorder, name: str, requested: str | None, ctx: LLMContext, *, stream: bool
    ) -> None:
        self.recorder = recorder
        self.name = name
        self.requested_model = requested
        self.model: str | None = None
        self.usage: TokenUsage | None = None
        self.properties: dict[str, Any] = {"stream": True} if stream else {}
        self.error: tuple[str, str] | None = None  # (type, message) of an in-band failure
        self.scratch: dict[str, Any] = {}  # observers' state across stream items
        self._ctx = ctx
        self._started_at = datetime.now(UTC)
        self._t0 = time.perf_counter()
        self._done = False
        self._lock = threading.Lock()

    def mark_first_chunk(self) -> None:
        if "time_to_first_chunk_ms" not in self.properties:
            elapsed = (time.perf_counter() - self._t0) * 1000
            self.properties["time_to_first_chunk_ms"] = round(elapsed, 3)

    def append_completion(self, text: object) -> None:
        """Extend ``properties["completion_summary"]`` up to the summary limit."""
        limit = self.recorder.max_summary_chars
        so_far = self.properties.get("completion_summary", "")
        if isinstance(text, str) and len(so_far) < limit:
            self.properties["completion_summary"] = (so_far + text)[:limit]

    def observe(self, fn: Callable[[Call, Any], None], item: Any) -> None:
        """Run an observer on a response or stream item; never raises."""
        try:
            fn(self, item)
        except Exception:
            note_observe_failure()

    def fail(self, exc: BaseException) -> None:
        """The call raised ``exc`` (the caller re-raises it)."""
        status_code = getattr(exc, "status_code", None)
        if isinstance(status_code, int):
            self.properties["status_code"] = status_code
        self.finish(error=(type(exc).__name__, str(exc)))

    def finish(self, *, error: tuple[str, str] | None = None, completed: bool = True) -> None:
        """Emit the event once; later calls are no-ops. Never raises."""
        with self._lock:
            if self._done:
                return
            self._done = True
        if not completed:
            self.properties["stream_completed"] = False
        try:
            event = self._build(error or self.error)
        except Exception:
            if stats.incr("emit_failed") == 1 or log.isEnabledFor(logging.DEBUG):
                log.warning("meterline: could not build an LLM event", exc_info=True)
            return
        _safe_emit(self.recorder.emit, event)

    def _build(self, error: tuple[str, str] | None) -> ActionEvent:
        ended_at = datetime.now(UTC)
        duration_ms = (time.perf_counter() - self._t0) * 1000
        model = self.model or self.requested_model or "unknown"
        props = dict(self.properties)
        if self.requested_model and self.requested_model != model:
            props["requested_model"] = self.requested_model
        usage = self.usage
        if usage is None:
            usage = TokenUsage()
            if error is None:
                props["usage_available"] = False
        if usage.cache_write_tokens:
            props["cache_write_tokens"] = usage.cache_write_tokens
        cost = compute_cost(
            self.recorder.provider,
            model,
            usage,
            self.recorder.prices,
            requested_model=self.requested_model,
        )
        props["cost_source"] = cost.source
        if cost.source == "unpriced":
            stats.incr("unpriced")
        ctx = self._ctx
        return ActionEvent(
            kind=ActionKind.LLM_CALL,
            name=self.name,
            event_id=uuid.uuid4().hex,
            project=ctx.project or "default",
            trace_id=ctx.trace_id,
            session_id=ctx.session_id,
            user_id=ctx.user_id,
            anonymous_id=ctx.anonymous_id,
            agent_id=ctx.agent_id,
            metadata=dict(ctx.metadata),
            model=model,
            provider=self.recorder.provider,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_tokens=usage.cached_tokens,
            cost_usd=cost.usd,
            started_at=self._started_at,
            ended_at=ended_at,
            duration_ms=duration_ms,
            status=Status.ERROR if error else Status.SUCCESS,
            error_type=error[0] if error else None,
            error_message=error[1][:_MAX_ERROR_CHARS] if error else None,
            properties=props,
        )


def note_observe_failure() -> None:
    """Count a response or stream item the observers could not read (call from ``except``)."""
    failures = stats.incr("observe_failed")
    if failures == 1 or failures % 1000 == 0:
        log.warning(
            "meterline: could not read an LLM response (%d so far)", failures, exc_info=True
        )


def _safe_emit(emit: Emit, event: ActionEvent) -> None:
    try:
        accepted = emit(event) is not False
    except Exception:
        failures = stats.incr("emit_failed")
        if failures == 1 or failures % 1000 == 0:
            log.warning(
                "meterline: emit failed (%d so far); LLM event dropped", failures, exc_info=True
            )
        return
    stats.incr("emitted" if accepted else "emit_failed")

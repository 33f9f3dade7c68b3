"""machina-style ``ActionTracer``: structured ``TraceEntry`` records, JSONL export, and
publication to meterline.

    tracer = ActionTracer()
    MeterlinePublisher().attach(tracer)          # every entry also goes to meterline
    with tracer.trace("llm_call", operation="complete") as span:
        span.output_summary = "..."

Mapping of an entry to ``meterline.schemas.ActionEvent`` (source ``machina``): ``event_id`` = entry
id,
``kind`` = llm_call / tool_call / action from ``action`` (see ``KIND_BY_ACTION``), ``name`` =
``operation`` or ``action``, ``session_id`` = ``conversation_id``, ``properties`` = action,
connector, asset_id, operation and the truncated summaries; ``metadata`` = entry metadata.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from meterline.producers.config import get_client
from meterline.producers.redact import DEFAULT_REDACTOR, Redactor
from meterline.producers.safety import swallow
from meterline.producers.sdk import MeterlineClient
from meterline.schemas import ActionEvent, ActionKind, Status

log = logging.getLogger(__name__)

SOURCE = "machina"
KIND_BY_ACTION = {
    "llm_call": ActionKind.LLM_CALL,
    "tool_call": ActionKind.TOOL_CALL,
    "tool_invocation": ActionKind.TOOL_CALL,
    "connector_query": ActionKind.TOOL_CALL,
}


def _now() -> datetime:
    return datetime.now(UTC)


class TraceEntry(BaseModel):
    """A single traced action performed by the agent."""

    model_config = ConfigDict(validate_assignment=False)

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    timestamp: datetime = Field(default_factory=_now)
    action: str
    connector: str = ""
    asset_id: str = ""
    operation: str = ""
    conversation_id: str = ""
    input_summary: str = ""
    output_summary: str = ""
    duration_ms: float = 0.0
    success: bool = True
    error: str | None = None
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    metadata: dict[str, Any] = Field(default_factory=dict)

    def redacting_dump_json(
        self, *, max_summary_chars: int = 2000, redactor: Redactor = DEFAULT_REDACTOR
    ) -> str:
        """Serialize to JSON with secret redaction and summary truncation.

        Unlike ``model_dump_json()``: metadata keys matching sensitive patterns (and secret
        substrings anywhere) are redacted; input/output summaries are cut to
        ``max_summary_chars`` characters.
        """
        data = self.model_dump(mode="json")
        data["metadata"] = redactor.mapping(self.metadata)
        for key in ("input_summary", "output_summary"):
            data[key] = redactor.text(data[key])[:max_summary_chars]
        if data["error"] is not None:
            data["error"] = redactor.text(data["error"])
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


class _TraceContext:
    """Context manager yielding a :class:`TraceEntry`, finalised and recorded on exit.

    An exception in the block sets ``success=False`` and ``error``, records the entry, and
    propagates.
    """

    def __init__(self, tracer: ActionTracer, entry: TraceEntry) -> None:
        self._tracer = tracer
        self.entry = entry
        self._t0 = 0.0

    def __enter__(self) -> TraceEntry:
        self.entry.timestamp = _now()
        self._t0 = time.perf_counter()
        return self.entry

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.entry.duration_ms = (time.perf_counter() - self._t0) * 1000.0
        if exc is not None:
            self.entry.success = False
            self.entry.error = f"{type(exc).__name__}: {exc}"
        self._tracer.record(self.entry)

    async def __aenter__(self) -> TraceEntry:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


class ActionTracer:
    """Records and stores agent action traces (the newest ``max_entries``)."""

    def __init__(self, *, max_entries: int = 1000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.max_entries = max_entries
        self._entries: deque[TraceEntry] = deque(maxlen=max_entries)
        self._subscribers: list[Callable[[TraceEntry], Any]] = []
        self._lock = threading.Lock()

    @property
    def entries(self) -> list[TraceEntry]:
        """All recorded trace entries (oldest first)."""
        with self._lock:
            return list(self._entries)

    def subscribe(self, callback: Callable[[TraceEntry], Any]) -> None:
        """Register a callback invoked on every new entry. A failing callback is logged and
        does not stop the others."""
        with self._lock:
            self._subscribers.append(callback)

    def record(self, entry: TraceEntry) -> None:
        """Add a trace entry and notify subscribers."""
        with self._lock:
            self._entries.append(entry)
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(entry)
            except Exception:
                log.exception("trace subscriber %r failed", callback)

    def trace(
        self,
        action: str,
        *,
        connector: str = "",
        asset_id: str = "",
        operation: str = "",
        conversation_id: str = "",
        **metadata: Any,
    ) -> _TraceContext:
        """Context manager that records timing and outcome."""
        entry = TraceEntry(
            action=action, connector=connector, asset_id=asset_id, operation=operation,
            conversation_id=conversation_id, metadata=metadata,
        )
        return _TraceContext(self, entry)

    def clear(self) -> None:
        """Remove all recorded entries."""
        with self._lock:
            self._entries.clear()

    def summary(self) -> list[dict[str, Any]]:
        """Return a serialisable (JSON-mode, redacted) summary of all entries."""
        return [json.loads(e.redacting_dump_json(max_summary_chars=200)) for e in self.entries]


class JSONLExporter:
    """Write trace entries as redacted JSONL with daily file rotation.

    Files are ``<path>/traces-YYYY-MM-DD.jsonl`` (UTC date of the entry) or
    ``<path>/traces.jsonl`` without rotation. ``path`` is created if only it is missing.

    Raises:
        FileNotFoundError: if ``path`` is inside a missing parent.
    """

    def __init__(
        self, path: str | Path, *, rotate_daily: bool = True, max_summary_chars: int = 2000
    ) -> None:
        self.path = Path(path)
        if not self.path.parent.exists():
            raise FileNotFoundError(f"parent directory does not exist: {self.path.parent}")
        self.path.mkdir(exist_ok=True)
        self.rotate_daily = rotate_daily
        self.max_summary_chars = max_summary_chars
        self._lock = threading.Lock()

    def file_for(self, entry: TraceEntry) -> Path:
        if not self.rotate_daily:
            return self.path / "traces.jsonl"
        day = entry.timestamp.astimezone(UTC).date().isoformat()
        return self.path / f"traces-{day}.jsonl"

    def write(self, entry: TraceEntry) -> None:
        line = entry.redacting_dump_json(max_summary_chars=self.max_summary_chars)
        with self._lock, self.file_for(entry).open("a", encoding="utf-8") as f:
            f.write(line + "\n")

    def attach(self, tracer: ActionTracer) -> None:
        """Subscribe to a tracer so entries are written automatically."""
        tracer.subscribe(self.write)


class MeterlinePublisher:
    """Publishes every entry of the tracers it is attached to as a meterline ActionEvent.

    Non-blocking: the entry is queued; mapping, redaction and produce happen on the SDK's
    sender thread. ``max_summary_chars`` bounds the summaries copied into ``properties``.
    """

    def __init__(
        self,
        client: MeterlineClient | None = None,
        *,
        user_id: str | None = None,
        trace_id: str | None = None,
        max_summary_chars: int = 2000,
    ) -> None:
        self._client = client
        self.user_id = user_id
        self.trace_id = trace_id
        self.max_summary_chars = max_summary_chars

    def attach(self, tracer: ActionTracer) -> None:
        tracer.subscribe(self.publish)

    def publish(self, entry: TraceEntry) -> bool:
        """Queue ``entry``; False when it was dropped (counted). Never raises, except in
        strict mode."""
        try:
            client = self._client or get_client()
            return client.submit(self.to_event, entry.model_copy(), client.agent_id)
        except Exception as err:
            swallow("MeterlinePublisher.publish()", err)
            return False

    def to_event(self, entry: TraceEntry, agent_id: str | None = None) -> ActionEvent:
        kind = KIND_BY_ACTION.get(entry.action, ActionKind.ACTION)
        model = entry.model or str(entry.metadata.get("model", "")) or None
        if kind is ActionKind.LLM_CALL and not model:
            model = "unknown"
        cut = self.max_summary_chars
        return ActionEvent(
            event_id=entry.id,
            kind=kind,
            name=entry.operation or entry.action,
            status=Status.SUCCESS if entry.success else Status.ERROR,
            started_at=entry.timestamp,
            ended_at=entry.timestamp + timedelta(milliseconds=entry.duration_ms),
            duration_ms=entry.duration_ms,
            model=model,
            input_tokens=entry.input_tokens,
            output_tokens=entry.output_tokens,
            cost_usd=entry.cost_usd,
            error_type=entry.error.split(":", 1)[0] if entry.error else None,
            error_message=entry.error,
            session_id=entry.conversation_id or None,
            trace_id=self.trace_id,
            user_id=self.user_id,
            agent_id=agent_id,
            timestamp=entry.timestamp,
            properties={
                "action": entry.action, "connector": entry.connector,
                "asset_id": entry.asset_id, "operation": entry.operation,
                "input_summary": entry.input_summary[:cut],
                "output_summary": entry.output_summary[:cut],
            },
            metadata=entry.metadata,
            source=SOURCE,
        )

"""valmi-style explicit tracking: the ``action`` context manager and explicit outcomes.

    with action("object_detection", user_id="user_123") as act:
        act.properties["objects"] = 3   # optional: attach data while the action runs
        detect(...)

On exit one ``meterline.schemas.ActionEvent`` (kind ``action``, source ``valmi``) is recorded with
``status`` success/error, ``started_at``/``ended_at``/``duration_ms``, and, when the block
raised, ``error_type`` (exception class) and ``error_message``; the exception is re-raised.

Explicit outcomes (``send_outcome``) travel as ``meterline.schemas.TelemetryEvent`` with
``event_type = "outcome.<name>"`` and ``properties = {"outcome": name, "status": ...,
"value": ..., **properties}``; the rules engine treats them as already-derived outcomes.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from meterline.producers.config import get_client
from meterline.producers.ids import new_id, stable_id
from meterline.producers.safety import is_strict, swallow
from meterline.producers.sdk import MeterlineClient
from meterline.schemas import ActionEvent, Status, TelemetryEvent

SOURCE = "valmi"


class Action:
    """One tracked unit of work. Mutate ``properties`` / ``metadata`` inside the block;
    ``fail(message)`` marks it failed without raising."""

    __slots__ = (
        "_client", "_event_id", "_inert", "_t0", "anonymous_id", "error_message", "error_type",
        "metadata", "name", "properties", "session_id", "started_at", "status",
        "trace_id", "user_id",
    )

    def __init__(
        self,
        name: str,
        *,
        user_id: str | None = None,
        anonymous_id: str | None = None,
        trace_id: str | None = None,
        session_id: str | None = None,
        properties: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        client: MeterlineClient | None = None,
    ) -> None:
        self._inert = False
        if not name or not isinstance(name, str):
            if is_strict():
                raise ValueError("action name must be a non-empty string")
            swallow("action()", ValueError(f"action name must be a non-empty string: {name!r}"))
            self._inert = True  # the block still runs; nothing is recorded
        self._client = client
        self.name = name
        self.user_id = user_id
        self.anonymous_id = anonymous_id
        self.trace_id = trace_id
        self.session_id = session_id
        self.properties: dict[str, Any] = dict(properties) if properties else {}
        self.metadata: dict[str, Any] = dict(metadata) if metadata else {}
        self._event_id = stable_id("valmi.action", name, idempotency_key) if idempotency_key \
            else None
        self.status = Status.SUCCESS
        self.error_type: str | None = None
        self.error_message: str | None = None
        self.started_at = 0.0
        self._t0 = 0.0

    @property
    def event_id(self) -> str:
        """This action's event id (deterministic when an ``idempotency_key`` was given)."""
        if self._event_id is None:
            self._event_id = new_id()
        return self._event_id

    def fail(self, message: str, error_type: str = "Failure") -> None:
        self.status, self.error_type, self.error_message = Status.ERROR, error_type, message

    def __enter__(self) -> Action:
        self.started_at = time.time()
        self._t0 = time.perf_counter()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        duration_ms = (time.perf_counter() - self._t0) * 1000.0
        if self._inert:
            return
        try:
            if exc is not None:
                self.fail(str(exc), exc_type.__name__ if exc_type else "Exception")
            client = self._client or get_client()
            client.submit(_build_action, self, duration_ms, client.agent_id)
        except Exception as err:  # metering never replaces the block's outcome
            swallow("action exit", err)

    async def __aenter__(self) -> Action:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def action(
    name: str,
    *,
    user_id: str | None = None,
    anonymous_id: str | None = None,
    trace_id: str | None = None,
    session_id: str | None = None,
    properties: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    client: MeterlineClient | None = None,
) -> Action:
    """Track a unit of work (see the module docstring). Usable with ``with`` and ``async with``.

    Never raises because of metering (unconfigured SDK, empty ``name``: the block runs, nothing
    is recorded, the drop is counted), except in strict mode."""
    return Action(
        name, user_id=user_id, anonymous_id=anonymous_id, trace_id=trace_id,
        session_id=session_id, properties=properties, metadata=metadata,
        idempotency_key=idempotency_key, client=client,
    )


def _build_action(a: Action, duration_ms: float, agent_id: str | None) -> ActionEvent:
    started = datetime.fromtimestamp(a.started_at, UTC)
    return ActionEvent(
        event_id=a.event_id,
        name=a.name,
        status=a.status,
        started_at=started,
        ended_at=started + timedelta(milliseconds=duration_ms),
        duration_ms=duration_ms,
        error_type=a.error_type,
        error_message=a.error_message,
        user_id=a.user_id,
        anonymous_id=a.anonymous_id,
        trace_id=a.trace_id,
        session_id=a.session_id,
        agent_id=agent_id,
        timestamp=started,
        properties=a.properties,
        metadata=a.metadata,
        source=SOURCE,
    )


def send_outcome(
    name: str,
    *,
    status: str = "success",
    value: float | None = None,
    user_id: str | None = None,
    anonymous_id: str | None = None,
    trace_id: str | None = None,
    session_id: str | None = None,
    properties: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    client: MeterlineClient | None = None,
) -> str:
    """Record a business outcome explicitly; returns its event id.

    With ``idempotency_key`` (e.g. the invoice id) the event id is deterministic, so sending
    the same outcome twice is counted once. Never raises because of metering (the event id is
    still returned; a drop is counted), except in strict mode.
    """
    event_id = stable_id("valmi.outcome", name, idempotency_key) if idempotency_key \
        else new_id()
    try:
        if not name or not isinstance(name, str):
            raise ValueError(f"outcome name must be a non-empty string: {name!r}")
        c = client or get_client()
        payload = {**(properties or {}), "outcome": name, "status": status, "value": value}
        c.submit(
            _build_outcome, event_id, name, payload, user_id, anonymous_id, trace_id,
            session_id, dict(metadata) if metadata else {}, c.agent_id, datetime.now(UTC),
        )
    except Exception as err:
        swallow("send_outcome()", err)
    return event_id


def _build_outcome(
    event_id: str, name: str, payload: dict[str, Any], user_id: str | None,
    anonymous_id: str | None, trace_id: str | None, session_id: str | None,
    metadata: dict[str, Any], agent_id: str | None, timestamp: datetime,
) -> TelemetryEvent:
    return TelemetryEvent(
        event_id=event_id, event_type=f"outcome.{name}", properties=payload, user_id=user_id,
        anonymous_id=anonymous_id, trace_id=trace_id, session_id=session_id or trace_id,
        metadata=metadata, agent_id=agent_id, timestamp=timestamp, source=SOURCE,
    )

"""Hand-built events for rule tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from meterline.schemas import ActionEvent, ActionKind, ControlPlane, Status, TelemetryEvent
from meterline.stream_processors.control_plane import load_control_plane

EXAMPLE = Path(__file__).parents[3] / "docs" / "examples" / "control-plane.yaml"
T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def example() -> ControlPlane:
    return load_control_plane(EXAMPLE)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def action(
    event_id: str,
    name: str,
    t: float = 0,
    *,
    trace: str | None = "tr1",
    status: Status = Status.SUCCESS,
    kind: ActionKind = ActionKind.ACTION,
    user: str | None = "u1",
    **properties: Any,
) -> ActionEvent:
    return ActionEvent(
        event_id=event_id,
        name=name,
        kind=kind,
        model="gpt-4o-mini" if kind is ActionKind.LLM_CALL else None,
        status=status,
        trace_id=trace,
        user_id=user,
        timestamp=at(t),
        properties=properties,
    )


def llm(event_id: str, t: float = 0, **kwargs: Any) -> ActionEvent:
    return action(event_id, "chat", t, kind=ActionKind.LLM_CALL, **kwargs)


def telemetry(
    event_id: str, event_type: str, t: float = 0, *, trace: str | None = "tr1", user: str = "u1"
) -> TelemetryEvent:
    return TelemetryEvent(
        event_id=event_id, event_type=event_type, trace_id=trace, user_id=user, timestamp=at(t)
    )

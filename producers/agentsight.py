"""AgentSight-style ``track_action``: log one function / tool / operation of an agent.

Each call records one ``meterline.schemas.ActionEvent`` (kind ``action``, source ``agentsight``):
``name`` = action_name, ``session_id`` = conversation_id, ``status`` = error when
``error_msg`` is given, ``properties`` = {tools_used, response, display_name}, ``metadata``
as given (redacted). The call returns as soon as the event is queued.

Display names (technical name -> dashboard label) come from ``display_names=`` (a mapping)
or ``display_names_file=`` (YAML, either a top-level mapping or a ``display_names:`` key;
needs ``pyyaml``: ``pip install 'meterline[sdk-config]'``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from meterline.producers.config import get_client
from meterline.producers.ids import iso_z, new_id, stable_id
from meterline.producers.safety import swallow
from meterline.producers.sdk import MeterlineClient
from meterline.schemas import ActionEvent, Status

SOURCE = "agentsight"
SUCCESS_MESSAGE = "Action tracked successfully"


def load_display_names(path: str | Path) -> dict[str, str]:
    """Read ``{technical_name: label}`` from a YAML file (see the module docstring)."""
    try:
        import yaml
    except ImportError as exc:  # pragma: no cover - exercised only without pyyaml
        raise ImportError(
            "display_names_file needs PyYAML: pip install 'meterline[sdk-config]'"
        ) from exc
    data = yaml.safe_load(Path(path).read_text()) or {}
    if isinstance(data, dict) and isinstance(data.get("display_names"), dict):
        data = data["display_names"]
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of action name -> display name")
    return {str(k): str(v) for k, v in data.items()}


class AgentSightTracker:
    """The ``tracker`` object of the AgentSight docs, publishing to meterline."""

    def __init__(
        self,
        client: MeterlineClient | None = None,
        *,
        display_names: Mapping[str, str] | None = None,
        display_names_file: str | Path | None = None,
    ) -> None:
        self._client = client
        names = dict(load_display_names(display_names_file)) if display_names_file else {}
        names.update(display_names or {})
        self.display_names = names

    def display_name(self, action_name: str) -> str:
        return self.display_names.get(action_name, action_name)

    def track_action(
        self,
        action_name: str,
        started_at: str | None = None,
        ended_at: str | None = None,
        duration_ms: int | None = None,
        tools_used: dict[str, Any] | None = None,
        response: str | None = None,
        error_msg: str | None = None,
        conversation_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Queue one action; returns ``{status, conversation_id, timestamp, action_name,
        message}``. ``status`` is ``"error"`` (with the reason in ``message``) when the
        arguments are invalid or the event could not be queued; it never raises.

        With ``idempotency_key`` (a meterline extension) the event id is derived from it, so
        re-sending the same action is counted once."""
        now = time.time()
        cid = conversation_id or new_id()
        fast = (  # the common case, checked inline (the hot path)
            type(action_name) is str and action_name and started_at is None
            and ended_at is None and (duration_ms is None or type(duration_ms) is int)
            and (duration_ms is None or duration_ms >= 0)
        )
        problem = None if fast else _check(action_name, started_at, ended_at, duration_ms)
        if problem is None:
            try:
                client = self._client or get_client()
                queued = client.submit(
                    _build, action_name, started_at, ended_at, duration_ms,
                    dict(tools_used) if tools_used else None, response, error_msg, cid,
                    dict(metadata) if metadata else None, self.display_names.get(action_name),
                    now, client.agent_id,
                    stable_id("agentsight", action_name, idempotency_key)
                    if idempotency_key else None,
                )
                if not queued:
                    problem = f"Action not tracked: {client.drop_reason}"
            except Exception as err:
                swallow("track_action()", err)
                problem = f"Action not tracked: {err}"
        return {
            "status": "success" if problem is None else "error",
            "conversation_id": cid,
            "timestamp": iso_z(now),
            "action_name": action_name,
            "message": SUCCESS_MESSAGE if problem is None else problem,
        }


def _check(
    action_name: object, started_at: str | None, ended_at: str | None, duration_ms: object
) -> str | None:
    if not isinstance(action_name, str) or not action_name:
        return "action_name is required (a non-empty string)"
    for field, value in (("started_at", started_at), ("ended_at", ended_at)):
        if value is not None:
            try:
                datetime.fromisoformat(value)
            except (TypeError, ValueError):
                return f"{field} is not an ISO timestamp: {value!r}"
    if duration_ms is not None and (
        isinstance(duration_ms, bool) or not isinstance(duration_ms, int | float)
        or duration_ms < 0
    ):
        return f"duration_ms must be a non-negative number: {duration_ms!r}"
    return None


def _build(
    action_name: str, started_at: str | None, ended_at: str | None, duration_ms: float | None,
    tools_used: dict[str, Any] | None, response: str | None, error_msg: str | None, cid: str,
    metadata: dict[str, Any] | None, label: str | None, now: float, agent_id: str | None,
    event_id: str | None,
) -> ActionEvent:
    props: dict[str, Any] = {}
    if tools_used is not None:
        props["tools_used"] = tools_used
    if response is not None:
        props["response"] = response
    if label is not None:
        props["display_name"] = label
    return ActionEvent(
        event_id=event_id or new_id(),
        name=action_name,
        status=Status.ERROR if error_msg else Status.SUCCESS,
        started_at=started_at,  # type: ignore[arg-type]  # pydantic parses ISO strings
        ended_at=ended_at,  # type: ignore[arg-type]
        duration_ms=duration_ms,
        error_message=error_msg,
        session_id=cid,
        agent_id=agent_id,
        timestamp=datetime.fromtimestamp(now, UTC),
        properties=props,
        metadata=metadata or {},
        source=SOURCE,
    )


_default: AgentSightTracker | None = None


def track_action(
    action_name: str,
    started_at: str | None = None,
    ended_at: str | None = None,
    duration_ms: int | None = None,
    tools_used: dict[str, Any] | None = None,
    response: str | None = None,
    error_msg: str | None = None,
    conversation_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    *,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """:meth:`AgentSightTracker.track_action` on a process-wide tracker that uses the
    process-wide client. Never raises."""
    global _default
    if _default is None:
        _default = AgentSightTracker()
    return _default.track_action(
        action_name, started_at, ended_at, duration_ms, tools_used, response, error_msg,
        conversation_id, metadata, idempotency_key=idempotency_key,
    )

"""AgentOps-style events: ``ActionEvent``, ``LLMEvent``, ``ToolEvent``, ``ErrorEvent``, the
``record`` function and the ``record_action`` / ``record_tool`` decorators.

These SDK classes are mutable dataclasses (as in AgentOps); ``record(event)`` queues one and
returns. They map to ``meterline.schemas.ActionEvent`` (source ``agentops``):

=============  =========  =================================================================
SDK class      wire kind  name / notable fields
=============  =========  =================================================================
ActionEvent    action     name = action_type; properties: params, returns, logs, screenshot
LLMEvent       llm_call   model, input_tokens = prompt_tokens, output_tokens =
                          completion_tokens; properties: thread_id, prompt, completion
ToolEvent      tool_call  name; properties: params, returns, logs
ErrorEvent     error      name = error_type; error_message = details; parent_event_id =
                          trigger_event.id; properties: code, logs
=============  =========  =================================================================

``event_id`` on the wire is the event's ``id`` (hex), so passing ``id=`` a UUID derived
from your own key (``uuid.uuid5``) makes re-recording idempotent.
"""

from __future__ import annotations

import functools
import inspect
import traceback
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, ParamSpec, TypeVar, cast

import meterline.schemas
from meterline.producers.config import get_client
from meterline.producers.safety import swallow
from meterline.producers.sdk import MeterlineClient
from meterline.schemas import ActionKind, Status

SOURCE = "agentops"
_MAX_TEXT = 4000
P = ParamSpec("P")
R = TypeVar("R")


def get_iso_time() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(kw_only=True)
class Event:
    """Abstract base of recorded events; instantiate a subclass."""

    event_type: ClassVar[str] = "event"
    params: dict[str, Any] | None = None
    returns: Any = None
    init_timestamp: str = field(default_factory=get_iso_time)
    #: default: ``init_timestamp`` itself (one clock read: two could straddle a millisecond,
    #: and ``record`` would then take the event as already ended, with its duration lost)
    end_timestamp: str = ""
    agent_id: uuid.UUID | None = None
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    #: Set by the decorators when the wrapped function raised: the wire status is "error".
    exception: BaseException | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if type(self) is Event:
            raise TypeError("Event is abstract: use ActionEvent, LLMEvent or ToolEvent")
        if not self.end_timestamp:
            self.end_timestamp = self.init_timestamp


@dataclass
class ActionEvent(Event):
    event_type: ClassVar[str] = "actions"
    action_type: str | None = None
    logs: str | None = None
    screenshot: str | None = None


@dataclass
class LLMEvent(Event):
    event_type: ClassVar[str] = "llms"
    thread_id: uuid.UUID | None = None
    prompt: str | list[Any] | None = None
    prompt_tokens: int | None = None
    completion: Any = None
    completion_tokens: int | None = None
    model: str | None = None


@dataclass
class ToolEvent(Event):
    event_type: ClassVar[str] = "tools"
    name: str | None = None
    logs: str | dict[str, Any] | None = None


@dataclass
class ErrorEvent:
    """An error, alone or referencing the event that triggered it (``trigger_event``).

    With ``exception=``, ``error_type``, ``details`` and ``logs`` default to the exception's
    class name, message and traceback.
    """

    event_type: ClassVar[str] = "errors"
    trigger_event: Event | None = None
    exception: BaseException | None = None
    error_type: str | None = None
    code: str | None = None
    details: str | None = None
    logs: str | None = None
    timestamp: str = field(default_factory=get_iso_time)
    id: uuid.UUID = field(default_factory=uuid.uuid4)

    def __post_init__(self) -> None:
        if self.exception is not None:
            exc = self.exception
            self.error_type = self.error_type or type(exc).__name__
            self.details = self.details or str(exc)
            self.logs = self.logs or "".join(
                traceback.format_exception(type(exc), exc, exc.__traceback__)
            )


AnyEvent = Event | ErrorEvent


def record(event: AnyEvent, *, client: MeterlineClient | None = None) -> bool:
    """Queue ``event`` for meterline; returns False if it was dropped (queue full).

    Like AgentOps, an event whose ``end_timestamp`` still equals its ``init_timestamp`` is
    ended now, so creating a ToolEvent before running the tool measures the tool.
    Never raises because of metering (returns False, counted), except in strict mode.
    """
    try:
        if isinstance(event, Event) and event.end_timestamp == event.init_timestamp:
            event.end_timestamp = get_iso_time()
        c = client or get_client()
        return c.submit(to_wire, event, c.agent_id)
    except Exception as err:
        swallow("agentops record()", err)
        return False


def _text(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _MAX_TEXT:
        return value[:_MAX_TEXT]
    return value


def to_wire(event: AnyEvent, default_agent_id: str | None = None) -> meterline.schemas.ActionEvent:
    """Map an SDK event to the wire ``meterline.schemas.ActionEvent`` (see the module docstring)."""
    if isinstance(event, ErrorEvent):
        return meterline.schemas.ActionEvent(
            event_id=event.id.hex, kind=ActionKind.ERROR, name=event.error_type or "error",
            status=Status.ERROR, error_type=event.error_type,
            error_message=event.details, timestamp=event.timestamp,  # type: ignore[arg-type]
            parent_event_id=event.trigger_event.id.hex if event.trigger_event else None,
            agent_id=_agent(event.trigger_event.agent_id if event.trigger_event else None,
                            default_agent_id),
            properties={"code": event.code, "logs": _text(event.logs)},
            source=SOURCE,
        )
    started = datetime.fromisoformat(event.init_timestamp)
    ended = datetime.fromisoformat(event.end_timestamp)
    common: dict[str, Any] = {
        "event_id": event.id.hex, "started_at": started, "ended_at": ended,
        "duration_ms": max(0.0, (ended - started).total_seconds() * 1000.0),
        "timestamp": started, "agent_id": _agent(event.agent_id, default_agent_id),
        "source": SOURCE,
    }
    if event.exception is not None:
        common.update(status=Status.ERROR, error_type=type(event.exception).__name__,
                      error_message=str(event.exception))
    props: dict[str, Any] = {"params": event.params, "returns": _text(event.returns)}
    if isinstance(event, LLMEvent):
        props.update(thread_id=event.thread_id, prompt=_text(event.prompt),
                     completion=_text(event.completion))
        return meterline.schemas.ActionEvent(
            kind=ActionKind.LLM_CALL, name=event.model or "llm", model=event.model or "unknown",
            input_tokens=event.prompt_tokens or 0, output_tokens=event.completion_tokens or 0,
            properties=props, **common,
        )
    if isinstance(event, ToolEvent):
        props["logs"] = event.logs
        return meterline.schemas.ActionEvent(
            kind=ActionKind.TOOL_CALL, name=event.name or "tool", properties=props, **common
        )
    if isinstance(event, ActionEvent):
        props.update(logs=event.logs, screenshot=event.screenshot)
        return meterline.schemas.ActionEvent(
            kind=ActionKind.ACTION, name=event.action_type or "action", properties=props,
            **common,
        )
    raise TypeError(f"cannot record {type(event).__name__}")


def _agent(agent_id: uuid.UUID | None, default: str | None) -> str | None:
    return str(agent_id) if agent_id is not None else default


def _params(
    sig: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    try:
        bound = sig.bind(*args, **kwargs)
    except TypeError:
        return {"args": list(args), **kwargs}
    bound.apply_defaults()
    return {k: v for k, v in bound.arguments.items() if k not in ("self", "cls")}


def _decorator(
    make: Callable[[dict[str, Any]], Event], client: MeterlineClient | None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        sig = inspect.signature(func)

        def start(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Event | None:
            try:
                return make(_params(sig, args, kwargs))
            except Exception as err:  # the function still runs; it is not recorded
                swallow(f"recording {func.__qualname__}", err)
                return None

        def finish(event: Event | None, result: Any, exc: BaseException | None) -> None:
            if event is None:
                return
            try:
                event.returns = result
                event.exception = exc
                event.end_timestamp = get_iso_time()
                record(event, client=client)
                if exc is not None:
                    record(ErrorEvent(trigger_event=event, exception=exc), client=client)
            except Exception as err:
                swallow(f"recording {func.__qualname__}", err)

        if inspect.iscoroutinefunction(func):
            afunc = cast(Callable[P, Awaitable[Any]], func)

            @functools.wraps(func)
            async def awrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                event = start(args, kwargs)
                try:
                    result = await afunc(*args, **kwargs)
                except BaseException as exc:
                    finish(event, None, exc)
                    raise
                finish(event, result, None)
                return result

            return cast(Callable[P, R], awrapper)

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            event = start(args, kwargs)
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                finish(event, None, exc)
                raise
            finish(event, result, None)
            return result

        return wrapper

    return decorate


def record_action(
    event_name: str, *, client: MeterlineClient | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator: record an ActionEvent (action_type = ``event_name``) with the function's
    params, return value and execution time; on an exception also an ErrorEvent referencing
    it, then re-raise. Works on sync and async functions."""
    return _decorator(lambda params: ActionEvent(action_type=event_name, params=params), client)


def record_tool(
    tool_name: str, *, client: MeterlineClient | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator: like :func:`record_action`, recording a ToolEvent named ``tool_name``."""
    return _decorator(lambda params: ToolEvent(name=tool_name, params=params), client)

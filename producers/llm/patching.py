"""Wrap a client method so each call is recorded, and put the wrapper on an instance or class.

Contract of every wrapper: the caller gets the library's own return value (streams stay the
library's stream objects) or the library's own exception, unchanged. Recording happens
beside the call and never raises. A call that passes through two wrappers (a client
instrumented per instance while ``instrument_all`` is active) is recorded once, by the outer.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from meterline.producers.llm.recorder import Call, Recorder
from meterline.producers.llm.streams import Observer, observe_async_stream, observe_stream

log = logging.getLogger(__name__)

ORIGINAL = "__meterline_original__"
in_call: ContextVar[bool] = ContextVar("meterline_llmin_call", default=False)


@dataclass(frozen=True)
class Endpoint:
    """How to read one API method: its event name, its result, its stream items."""

    name: str
    on_result: Callable[[Call, Any], None]
    on_item: Observer
    #: Adjusts the request kwargs of a streaming call (e.g. to ask for usage); may record
    #: what it changed in ``call.properties``.
    prepare_stream: Callable[[Call, dict[str, Any]], dict[str, Any]] | None = None
    #: Returns the text to summarise when content capture is on.
    prompt_of: Callable[[dict[str, Any]], object] | None = None


def wrap_method(original: Callable[..., Any], recorder: Recorder, ep: Endpoint) -> Any:
    """A recording wrapper around a sync method or an async one.

    The wrapper is a plain function; for async methods it returns a coroutine, as the
    clients' own ``required_args`` decorators do (so ``iscoroutinefunction`` is unchanged).
    """

    @functools.wraps(original)
    def create(*args: Any, **kwargs: Any) -> Any:
        if in_call.get():
            return original(*args, **kwargs)
        stream = kwargs.get("stream") is True
        call, kwargs = begin(recorder, ep, kwargs, stream=stream)
        token = in_call.set(True)
        try:
            result = original(*args, **kwargs)
        except BaseException as exc:  # cancellations too; re-raised unchanged
            call.fail(exc)
            raise
        finally:
            in_call.reset(token)
        if inspect.isawaitable(result):
            return _finish_async(call, ep, result, stream)
        if stream:
            return observe_stream(result, call, ep.on_item)
        return _finish(call, ep, result)

    setattr(create, ORIGINAL, original)
    return create


async def _finish_async(call: Call, ep: Endpoint, pending: Awaitable[Any], stream: bool) -> Any:
    try:
        result = await pending
    except BaseException as exc:
        call.fail(exc)
        raise
    if stream:
        return observe_async_stream(result, call, ep.on_item)
    return _finish(call, ep, result)


def begin(
    recorder: Recorder, ep: Endpoint, kwargs: dict[str, Any], *, stream: bool
) -> tuple[Call, dict[str, Any]]:
    """Start recording a call; returns it and the (possibly adjusted) request kwargs."""
    call = recorder.start(ep.name, kwargs.get("model"), stream=stream)
    if recorder.capture_content and ep.prompt_of is not None:
        call.observe(_capture_prompt(ep.prompt_of, kwargs), None)
    if stream and ep.prepare_stream is not None:
        try:
            kwargs = ep.prepare_stream(call, kwargs)
        except Exception:
            log.debug("meterline: could not prepare stream kwargs", exc_info=True)
    return call, kwargs


def _capture_prompt(
    prompt_of: Callable[[dict[str, Any]], object], kwargs: dict[str, Any]
) -> Callable[[Call, Any], None]:
    def capture(call: Call, _: Any) -> None:
        summary = call.recorder.summary(prompt_of(kwargs))
        if summary is not None:
            call.properties["prompt_summary"] = summary

    return capture


def _finish(call: Call, ep: Endpoint, result: Any) -> Any:
    call.observe(ep.on_result, result)
    call.finish()
    return result


def patch(owner: Any, attr: str, make: Callable[[Callable[..., Any]], Any]) -> None:
    """Replace ``owner.attr`` (instance or class) by ``make(original)``; re-patching unwraps."""
    own = owner.__dict__.get(attr)
    if own is not None and hasattr(own, ORIGINAL):
        original = getattr(own, ORIGINAL)
    else:
        original = getattr(owner, attr)  # a function on a class, a bound method on an instance
    setattr(owner, attr, make(original))


def unpatch(owner: Any, attr: str) -> bool:
    """Undo :func:`patch`. Returns False when ``owner.attr`` was not patched."""
    current = owner.__dict__.get(attr)
    if current is None or not hasattr(current, ORIGINAL):
        return False
    if inspect.isclass(owner):
        setattr(owner, attr, getattr(current, ORIGINAL))
    else:
        delattr(owner, attr)
    return True


def is_patched(owner: Any, attr: str) -> bool:
    return hasattr(owner.__dict__.get(attr), ORIGINAL)


def last_user_message(kwargs: dict[str, Any]) -> object:
    """The content of the last ``role="user"`` message (for content capture)."""
    messages = kwargs.get("messages")
    if not isinstance(messages, Sequence):  # never consume a caller's iterator
        return None
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return message.get("content")
    return None

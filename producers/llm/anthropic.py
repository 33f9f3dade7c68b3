"""Record ``messages.create`` and ``messages.stream`` of the official ``anthropic`` client.

Sync (``Anthropic``) and async (``AsyncAnthropic``). Streams report usage in two events:
``message_start`` (input and cache tokens) and ``message_delta`` (cumulative output tokens,
sometimes updated input counts). Anthropic's ``input_tokens`` excludes cached tokens; the
event's ``input_tokens`` is ``input_tokens + cache_read_input_tokens +
cache_creation_input_tokens`` so it means the same for every provider, and
``cached_tokens`` is ``cache_read_input_tokens``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

try:
    import anthropic
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "meterline's anthropic instrumentation needs the anthropic client: "
        "pip install 'meterline[llm]'"
    ) from exc

from meterline.producers.llm.context import LLMContext
from meterline.producers.llm.patching import (
    ORIGINAL,
    Endpoint,
    begin,
    in_call,
    last_user_message,
    patch,
    unpatch,
    wrap_method,
)
from meterline.producers.llm.pricing import PriceOverrides, TokenUsage
from meterline.producers.llm.recorder import Call, Emit, Recorder, sdk_emit
from meterline.producers.llm.streams import observe_async_stream, observe_stream

PROVIDER = "anthropic"

C = TypeVar("C", anthropic.Anthropic, anthropic.AsyncAnthropic)


def instrument_anthropic(
    client: C,
    emit: Emit = sdk_emit,
    *,
    prices: PriceOverrides | None = None,
    project: str | None = None,
    trace_id: str | None = None,
    session_id: str | None = None,
    user_id: str | None = None,
    agent_id: str | None = None,
    capture_content: bool = False,
    max_summary_chars: int = 200,
) -> C:
    """Record every ``messages.create`` and ``messages.stream`` of this client.

    Same options and contract as :func:`meterline.producers.llm.openai.instrument_openai`.
    """
    ctx = LLMContext(
        project=project,
        trace_id=trace_id,
        session_id=session_id,
        user_id=user_id,
        agent_id=agent_id,
    )
    recorder = Recorder(emit, PROVIDER, prices, ctx, capture_content, max_summary_chars)
    patch_resource(client.messages, recorder)
    return client


def uninstrument_anthropic(client: anthropic.Anthropic | anthropic.AsyncAnthropic) -> bool:
    """Undo :func:`instrument_anthropic`. Returns False if the client was not instrumented."""
    created = unpatch(client.messages, "create")
    streamed = unpatch(client.messages, "stream")
    return created or streamed


def patch_resource(owner: Any, recorder: Recorder) -> None:
    """Patch ``create`` and ``stream`` of a ``Messages`` instance or class."""
    patch(owner, "create", lambda m: wrap_method(m, recorder, MESSAGES))
    patch(owner, "stream", lambda m: wrap_stream_helper(m, recorder))


def resource_classes() -> list[type]:
    """The classes :func:`meterline.producers.llm.instrument_all` patches."""
    from anthropic.resources.messages import AsyncMessages, Messages

    return [Messages, AsyncMessages]


# -- reading responses -------------------------------------------------------------------

_COUNTS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)


def _update_usage(call: Call, usage: Any) -> None:
    """Merge the counts present in ``usage`` (a ``Usage`` or ``MessageDeltaUsage``)."""
    counts: dict[str, int] = call.scratch.setdefault("counts", dict.fromkeys(_COUNTS, 0))
    for key in _COUNTS:
        value = getattr(usage, key, None)
        if isinstance(value, int):
            counts[key] = value
    read, written = counts["cache_read_input_tokens"], counts["cache_creation_input_tokens"]
    call.usage = TokenUsage(
        input_tokens=counts["input_tokens"] + read + written,
        output_tokens=counts["output_tokens"],
        cached_tokens=read,
        cache_write_tokens=written,
    )
    if written:
        call.properties["cache_creation_input_tokens"] = written


def _message_result(call: Call, message: Any) -> None:
    call.model = getattr(message, "model", None) or call.model
    usage = getattr(message, "usage", None)
    if usage is not None:
        _update_usage(call, usage)
    if stop := getattr(message, "stop_reason", None):
        call.properties["stop_reason"] = stop
    if call.recorder.capture_content and not call.properties.get("stream"):
        for block in getattr(message, "content", None) or ():
            call.append_completion(getattr(block, "text", None))


def _message_event(call: Call, event: Any) -> bool:
    kind = getattr(event, "type", None)
    if kind == "message_start":
        _message_result(call, event.message)
    elif kind == "message_delta":
        _update_usage(call, event.usage)
        if stop := getattr(event.delta, "stop_reason", None):
            call.properties["stop_reason"] = stop
    elif kind == "content_block_delta" and call.recorder.capture_content:
        call.append_completion(getattr(event.delta, "text", None))
    return True


MESSAGES = Endpoint(
    name="anthropic.messages",
    on_result=_message_result,
    on_item=_message_event,
    prompt_of=last_user_message,
)


# -- messages.stream(...) ----------------------------------------------------------------

_SYNC_REQUEST = "_MessageStreamManager__api_request"
_ASYNC_REQUEST = "_AsyncMessageStreamManager__api_request"


def wrap_stream_helper(original: Callable[..., Any], recorder: Recorder) -> Any:
    """Wrap ``messages.stream``: the request it defers to ``__enter__`` is recorded.

    The manager keeps its type; we swap the request it holds (a private attribute). If a
    library version renames it, the helper still works and is simply not recorded.
    """

    @functools.wraps(original)
    def stream(*args: Any, **kwargs: Any) -> Any:
        if in_call.get():
            return original(*args, **kwargs)
        token = in_call.set(True)
        try:
            manager = original(*args, **kwargs)
        finally:
            in_call.reset(token)
        state = vars(manager)
        if _SYNC_REQUEST in state:
            state[_SYNC_REQUEST] = _tracked_request(state[_SYNC_REQUEST], recorder, kwargs)
        elif _ASYNC_REQUEST in state:
            state[_ASYNC_REQUEST] = _tracked_arequest(state[_ASYNC_REQUEST], recorder, kwargs)
        return manager

    setattr(stream, ORIGINAL, original)
    return stream


def _tracked_request(
    request: Callable[[], Any], recorder: Recorder, kwargs: dict[str, Any]
) -> Callable[[], Any]:
    def tracked() -> Any:
        call, _ = begin(recorder, MESSAGES, kwargs, stream=True)
        try:
            raw = request()
        except BaseException as exc:  # cancellations too; re-raised unchanged
            call.fail(exc)
            raise
        return observe_stream(raw, call, _message_event)

    return tracked


async def _tracked_arequest(request: Any, recorder: Recorder, kwargs: dict[str, Any]) -> Any:
    call, _ = begin(recorder, MESSAGES, kwargs, stream=True)
    try:
        raw = await request
    except BaseException as exc:
        call.fail(exc)
        raise
    return observe_async_stream(raw, call, _message_event)

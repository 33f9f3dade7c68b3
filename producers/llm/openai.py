"""Record ``chat.completions.create`` and ``responses.create`` of the official ``openai`` client.

Sync (``OpenAI``) and async (``AsyncOpenAI``), plain and ``stream=True``; the
``.stream()`` helpers go through ``create`` and are recorded too. For chat-completion
streams usage is only sent when ``stream_options={"include_usage": True}``: when the caller
did not set ``include_usage`` we ask for it and hide the extra usage-only chunk (empty
``choices``) from the caller, so their loop sees the stream it would have seen.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

try:
    import openai
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "meterline's openai instrumentation needs the openai client: pip install 'meterline[llm]'"
    ) from exc

from meterline.producers.llm.context import LLMContext
from meterline.producers.llm.patching import (
    Endpoint,
    last_user_message,
    patch,
    unpatch,
    wrap_method,
)
from meterline.producers.llm.pricing import PriceOverrides, TokenUsage
from meterline.producers.llm.recorder import Call, Emit, Recorder, sdk_emit

PROVIDER = "openai"

C = TypeVar("C", openai.OpenAI, openai.AsyncOpenAI)


def instrument_openai(
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
    """Record every ``chat.completions.create`` and ``responses.create`` of this client.

    Only this client instance changes (returned for chaining); instrumenting it again
    replaces the previous recorder. The ids are defaults that an enclosing
    ``llm_context(...)`` overrides. ``capture_content`` records the last user prompt and the
    completion, truncated to ``max_summary_chars``, in ``properties`` (off by default).
    """
    ctx = LLMContext(
        project=project,
        trace_id=trace_id,
        session_id=session_id,
        user_id=user_id,
        agent_id=agent_id,
    )
    recorder = Recorder(emit, PROVIDER, prices, ctx, capture_content, max_summary_chars)
    patch_resource(client.chat.completions, recorder)
    patch_resource(client.responses, recorder)
    return client


def uninstrument_openai(client: openai.OpenAI | openai.AsyncOpenAI) -> bool:
    """Undo :func:`instrument_openai` on this client. Returns False if it was not instrumented."""
    chat = unpatch(client.chat.completions, "create")
    responses = unpatch(client.responses, "create")
    return chat or responses


def resource_classes() -> list[type]:
    """The classes :func:`meterline.producers.llm.instrument_all` patches."""
    from openai.resources.chat.completions import AsyncCompletions, Completions
    from openai.resources.responses import AsyncResponses, Responses

    return [Completions, AsyncCompletions, Responses, AsyncResponses]


def patch_resource(owner: Any, recorder: Recorder) -> None:
    """Patch ``create`` of a chat ``Completions`` or ``Responses`` instance or class."""
    name = owner.__name__ if isinstance(owner, type) else type(owner).__name__
    endpoint = CHAT if "Completions" in name else RESPONSES
    patch(owner, "create", lambda m: wrap_method(m, recorder, endpoint))


# -- chat completions --------------------------------------------------------------------


def _chat_usage(usage: Any) -> TokenUsage:
    details = getattr(usage, "prompt_tokens_details", None)
    return TokenUsage(
        input_tokens=usage.prompt_tokens or 0,
        output_tokens=usage.completion_tokens or 0,
        cached_tokens=getattr(details, "cached_tokens", None) or 0,
        cache_write_tokens=getattr(details, "cache_write_tokens", None) or 0,
    )


def _chat_result(call: Call, result: Any) -> None:
    call.model = getattr(result, "model", None) or None
    usage = getattr(result, "usage", None)
    if usage is not None:
        call.usage = _chat_usage(usage)
    if call.recorder.capture_content and getattr(result, "choices", None):
        call.append_completion(result.choices[0].message.content)


def _chat_chunk(call: Call, chunk: Any) -> bool:
    if model := getattr(chunk, "model", None):
        call.model = model
    choices = getattr(chunk, "choices", None)
    if call.recorder.capture_content and choices:
        call.append_completion(choices[0].delta.content)
    usage = getattr(chunk, "usage", None)
    if usage is None:
        return True
    call.usage = _chat_usage(usage)
    # Hide the usage-only chunk we asked for; the caller did not.
    return bool(choices) or not call.properties.get("usage_chunk_injected")


def _ask_for_usage(call: Call, kwargs: dict[str, Any]) -> dict[str, Any]:
    options = kwargs.get("stream_options")
    if isinstance(options, Mapping):
        if "include_usage" in options:
            return kwargs  # the caller decided
        options = {**options, "include_usage": True}
    else:  # absent, None or openai's omit sentinel
        options = {"include_usage": True}
    call.properties["usage_chunk_injected"] = True
    return {**kwargs, "stream_options": options}


CHAT = Endpoint(
    name="openai.chat.completions",
    on_result=_chat_result,
    on_item=_chat_chunk,
    prepare_stream=_ask_for_usage,
    prompt_of=last_user_message,
)


# -- responses ---------------------------------------------------------------------------


def _responses_result(call: Call, response: Any) -> None:
    call.model = getattr(response, "model", None) or call.model
    usage = getattr(response, "usage", None)
    if usage is not None:
        details = getattr(usage, "input_tokens_details", None)
        call.usage = TokenUsage(
            input_tokens=usage.input_tokens or 0,
            output_tokens=usage.output_tokens or 0,
            cached_tokens=getattr(details, "cached_tokens", None) or 0,
            cache_write_tokens=getattr(details, "cache_write_tokens", None) or 0,
        )
    status = getattr(response, "status", None)
    if status and status != "completed":
        call.properties["response_status"] = status
    if status == "failed":
        error = getattr(response, "error", None)
        call.error = ("ResponseFailed", str(getattr(error, "message", None) or "response failed"))
    if call.recorder.capture_content and not call.properties.get("stream"):
        call.append_completion(getattr(response, "output_text", None))


_FINAL_EVENTS = {"response.completed", "response.incomplete", "response.failed"}


def _responses_event(call: Call, event: Any) -> bool:
    kind = getattr(event, "type", None)
    if kind == "response.created":
        call.model = getattr(event.response, "model", None) or call.model
    elif kind in _FINAL_EVENTS:
        _responses_result(call, event.response)
    elif kind == "response.output_text.delta" and call.recorder.capture_content:
        call.append_completion(event.delta)
    elif kind == "error":
        call.error = (
            str(getattr(event, "code", None) or "ResponseStreamError"),
            str(getattr(event, "message", "")),
        )
    return True


def _responses_input(kwargs: dict[str, Any]) -> object:
    value = kwargs.get("input")
    return value if isinstance(value, str) else None


RESPONSES = Endpoint(
    name="openai.responses",
    on_result=_responses_result,
    on_item=_responses_event,
    prompt_of=_responses_input,
)

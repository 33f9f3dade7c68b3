"""The real ``openai`` client against canned HTTP responses, instrumented per instance."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

from meterline.producers.llm import (
    LLMStats,
    ModelPrice,
    PriceOverrides,
    instrument_all,
    instrument_openai,
    llm_context,
    uninstrument,
)
from meterline.producers.llm import recorder as recorder_module
from meterline.schemas import ActionEvent
from meterline.schemas.events import ActionKind, Status
from tests.producers.llm.fixtures import (
    Traffic,
    api_error,
    chat_completion,
    chat_stream,
    response_object,
    responses_stream,
)

MESSAGES: list[Any] = [{"role": "user", "content": "Capital of France?"}]
MINI = "gpt-4o-mini"


def sync_client(traffic: Traffic, events: list[ActionEvent], **opts: Any) -> openai.OpenAI:
    client = openai.OpenAI(api_key="test", max_retries=0, http_client=traffic.sync_client())
    return instrument_openai(client, events.append, **opts)


def async_client(traffic: Traffic, events: list[ActionEvent], **opts: Any) -> openai.AsyncOpenAI:
    client = openai.AsyncOpenAI(api_key="test", max_retries=0, http_client=traffic.async_client())
    return instrument_openai(client, events.append, **opts)


def only(events: list[ActionEvent]) -> ActionEvent:
    assert len(events) == 1, events
    return events[0]


def assert_chat_event(ev: ActionEvent, *, prompt: int, completion: int, cached: int) -> None:
    assert ev.kind is ActionKind.LLM_CALL and ev.name == "openai.chat.completions"
    assert (ev.provider, ev.model) == ("openai", "gpt-4o-mini-2024-07-18")
    assert (ev.input_tokens, ev.output_tokens, ev.cached_tokens) == (prompt, completion, cached)
    assert ev.status is Status.SUCCESS and ev.error_type is None
    assert ev.cost_usd > 0 and ev.properties["cost_source"] == "genai-prices"
    assert ev.duration_ms is not None and ev.started_at and ev.ended_at
    assert ev.started_at <= ev.ended_at and len(ev.event_id) == 32


# -- chat completions ----------------------------------------------------------------------


def test_chat_sync(traffic: Traffic, events: list[ActionEvent]) -> None:
    traffic.body = chat_completion(prompt=1200, completion=80, cached=1024)
    result = sync_client(traffic, events).chat.completions.create(model=MINI, messages=MESSAGES)
    assert result.choices[0].message.content == "Paris."
    ev = only(events)
    assert_chat_event(ev, prompt=1200, completion=80, cached=1024)
    # 176 uncached at $0.15, 1024 cached at $0.075, 80 output at $0.60 per million
    assert ev.cost_usd == pytest.approx((176 * 0.15 + 1024 * 0.075 + 80 * 0.6) / 1e6)
    assert ev.properties["requested_model"] == MINI
    assert "prompt_summary" not in ev.properties  # no content unless asked for


def test_chat_async(traffic: Traffic, events: list[ActionEvent]) -> None:
    traffic.body = chat_completion(prompt=10, completion=5, cached=0)
    client = async_client(traffic, events)
    result = asyncio.run(client.chat.completions.create(model=MINI, messages=MESSAGES))
    assert result.usage is not None and result.usage.total_tokens == 15
    assert_chat_event(only(events), prompt=10, completion=5, cached=0)


def test_chat_stream_asks_for_usage_and_hides_the_usage_chunk(
    traffic: Traffic, events: list[ActionEvent]
) -> None:
    traffic.body = chat_stream()
    client = sync_client(traffic, events)
    stream = client.chat.completions.create(model=MINI, messages=MESSAGES, stream=True)
    assert isinstance(stream, openai.Stream)  # the caller keeps the library's type
    assert events == []  # nothing known before the stream is read
    chunks = list(stream)
    assert traffic.requests[0]["stream_options"] == {"include_usage": True}
    assert all(chunk.choices for chunk in chunks)  # loops doing choices[0] keep working
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Paris."
    ev = only(events)
    assert_chat_event(ev, prompt=300, completion=3, cached=256)
    assert ev.properties["stream"] is True and ev.properties["usage_chunk_injected"] is True
    assert ev.properties["time_to_first_chunk_ms"] <= ev.duration_ms  # type: ignore[operator]


def test_chat_stream_keeps_the_usage_chunk_the_caller_asked_for(
    traffic: Traffic, events: list[ActionEvent]
) -> None:
    traffic.body = chat_stream()
    client = sync_client(traffic, events)
    with client.chat.completions.create(
        model=MINI, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ) as stream:
        chunks = list(stream)
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    assert only(events).input_tokens == 300


def test_chat_stream_async(traffic: Traffic, events: list[ActionEvent]) -> None:
    traffic.body = chat_stream()
    client = async_client(traffic, events)

    async def run() -> str:
        stream = await client.chat.completions.create(model=MINI, messages=MESSAGES, stream=True)
        assert isinstance(stream, openai.AsyncStream)
        return "".join([c.choices[0].delta.content or "" async for c in stream])

    assert asyncio.run(run()) == "Paris."
    assert_chat_event(only(events), prompt=300, completion=3, cached=256)


def test_chat_stream_helper_is_recorded(traffic: Traffic, events: list[ActionEvent]) -> None:
    traffic.body = chat_stream()
    client = sync_client(traffic, events)
    with client.chat.completions.stream(model=MINI, messages=MESSAGES) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "Paris."
    assert_chat_event(only(events), prompt=300, completion=3, cached=256)


def test_stream_closed_early_is_recorded_as_incomplete(
    traffic: Traffic, events: list[ActionEvent]
) -> None:
    traffic.body = chat_stream()
    stream = sync_client(traffic, events).chat.completions.create(
        model=MINI, messages=MESSAGES, stream=True
    )
    next(iter(stream))
    stream.close()
    ev = only(events)
    assert ev.properties["stream_completed"] is False and ev.input_tokens == 0
    assert ev.properties["usage_available"] is False


@pytest.mark.parametrize(("status", "error"), [(429, openai.RateLimitError),
                                               (500, openai.InternalServerError)])  # fmt: skip
def test_chat_http_error_is_recorded_and_reraised(
    traffic: Traffic, events: list[ActionEvent], status: int, error: type[Exception]
) -> None:
    traffic.status, traffic.body = status, api_error("rate_limit_exceeded", "Slow down")
    client = sync_client(traffic, events)
    with pytest.raises(error, match="Slow down"):
        client.chat.completions.create(model=MINI, messages=MESSAGES)
    ev = only(events)
    assert ev.status is Status.ERROR and ev.error_type == error.__name__
    assert ev.error_message is not None and "Slow down" in ev.error_message
    assert ev.properties["status_code"] == status
    assert (ev.model, ev.input_tokens, ev.cost_usd) == (MINI, 0, 0.0)


def test_async_stream_http_error(traffic: Traffic, events: list[ActionEvent]) -> None:
    traffic.status, traffic.body = 429, api_error("rate_limit_exceeded", "Slow down")
    client = async_client(traffic, events)
    with pytest.raises(openai.RateLimitError):
        asyncio.run(client.chat.completions.create(model=MINI, messages=MESSAGES, stream=True))
    assert only(events).error_type == "RateLimitError"


# -- responses -----------------------------------------------------------------------------


def assert_responses_event(ev: ActionEvent) -> None:
    assert (ev.name, ev.provider, ev.model) == (
        "openai.responses",
        "openai",
        "gpt-4o-mini-2024-07-18",
    )
    assert (ev.input_tokens, ev.output_tokens, ev.cached_tokens) == (2000, 150, 1536)
    assert ev.status is Status.SUCCESS and ev.cost_usd > 0


def test_responses_sync(traffic: Traffic, events: list[ActionEvent]) -> None:
    traffic.body = response_object()
    result = sync_client(traffic, events).responses.create(model=MINI, input="Capital?")
    assert result.output_text == "Paris."
    assert_responses_event(only(events))


def test_responses_async(traffic: Traffic, events: list[ActionEvent]) -> None:
    traffic.body = response_object()
    client = async_client(traffic, events)
    asyncio.run(client.responses.create(model=MINI, input="Capital?"))
    assert_responses_event(only(events))


def test_responses_stream_sync_and_async(traffic: Traffic, events: list[ActionEvent]) -> None:
    traffic.body = responses_stream()
    kinds = [e.type for e in sync_client(traffic, events).responses.create(
        model=MINI, input="Capital?", stream=True)]  # fmt: skip
    assert kinds == ["response.created", "response.output_text.delta", "response.completed"]
    client = async_client(traffic, events)

    async def run() -> None:
        async for _ in await client.responses.create(model=MINI, input="Capital?", stream=True):
            pass

    asyncio.run(run())
    assert len(events) == 2
    for ev in events:
        assert_responses_event(ev)
        assert ev.properties["stream"] is True


def test_responses_failed_status_is_an_error(traffic: Traffic, events: list[ActionEvent]) -> None:
    traffic.body = {**response_object(status="failed"),
                    "error": {"code": "server_error", "message": "boom"}}  # fmt: skip
    sync_client(traffic, events).responses.create(model=MINI, input="x")
    ev = only(events)
    assert (ev.status, ev.error_type, ev.error_message) == (Status.ERROR, "ResponseFailed", "boom")


# -- attribution, pricing, content, safety -------------------------------------------------


def test_context_ids_and_defaults(traffic: Traffic, events: list[ActionEvent]) -> None:
    traffic.body = chat_completion()
    client = sync_client(traffic, events, project="p1", user_id="default-user", agent_id="a1")
    with llm_context(trace_id="t1", user_id="u1", metadata={"team": "x"}):
        client.chat.completions.create(model=MINI, messages=MESSAGES)
    client.chat.completions.create(model=MINI, messages=MESSAGES)
    inside, outside = events
    assert (inside.project, inside.trace_id, inside.user_id, inside.agent_id) == (
        "p1",
        "t1",
        "u1",
        "a1",
    )
    assert inside.metadata == {"team": "x"}
    assert (outside.trace_id, outside.user_id) == (None, "default-user")


def test_stream_keeps_the_context_it_was_opened_in(
    traffic: Traffic, events: list[ActionEvent]
) -> None:
    traffic.body = chat_stream()
    client = sync_client(traffic, events)
    with llm_context(trace_id="t-stream"):
        stream = client.chat.completions.create(model=MINI, messages=MESSAGES, stream=True)
    list(stream)
    assert only(events).trace_id == "t-stream"


def test_price_override_wins(traffic: Traffic, events: list[ActionEvent]) -> None:
    traffic.body = chat_completion(prompt=1_000_000, completion=1_000_000, cached=0)
    overrides = PriceOverrides({"gpt-4o-mini": ModelPrice(input=1.0, output=2.0)})
    sync_client(traffic, events, prices=overrides).chat.completions.create(
        model=MINI, messages=MESSAGES
    )
    ev = only(events)
    assert ev.cost_usd == pytest.approx(3.0) and ev.properties["cost_source"] == "override"


def test_content_capture_is_opt_in_and_truncated(
    traffic: Traffic, events: list[ActionEvent]
) -> None:
    traffic.body = chat_completion()
    client = sync_client(traffic, events, capture_content=True, max_summary_chars=7)
    client.chat.completions.create(model=MINI, messages=MESSAGES)
    props = only(events).properties
    assert (props["prompt_summary"], props["completion_summary"]) == ("Capital", "Paris.")


def test_failing_emit_never_reaches_the_agent(
    traffic: Traffic, monkeypatch: pytest.MonkeyPatch
) -> None:
    counters = LLMStats()
    monkeypatch.setattr(recorder_module, "stats", counters)
    traffic.body = chat_completion()

    def broken_emit(event: ActionEvent) -> None:
        raise RuntimeError("queue gone")

    client = openai.OpenAI(api_key="test", max_retries=0, http_client=traffic.sync_client())
    instrument_openai(client, broken_emit)
    result = client.chat.completions.create(model=MINI, messages=MESSAGES)
    assert result.choices[0].message.content == "Paris."
    assert (counters.emit_failed, counters.emitted) == (1, 0)


def test_uninstrument_and_instrument_all_record_once(
    traffic: Traffic, events: list[ActionEvent]
) -> None:
    traffic.body = chat_completion()
    client = sync_client(traffic, events)
    assert uninstrument(client) is True
    client.chat.completions.create(model=MINI, messages=MESSAGES)
    assert events == []

    global_events: list[ActionEvent] = []
    assert "openai" in instrument_all(global_events.append)
    try:
        fresh = openai.OpenAI(api_key="test", max_retries=0, http_client=traffic.sync_client())
        fresh.chat.completions.create(model=MINI, messages=MESSAGES)
        instrument_openai(fresh, events.append)  # per-instance on top: recorded once, here
        fresh.chat.completions.create(model=MINI, messages=MESSAGES)
    finally:
        assert uninstrument() is True
    assert len(global_events) == 1 and len(events) == 1
    fresh.chat.completions.create(model=MINI, messages=MESSAGES)
    assert len(global_events) == 1 and len(events) == 2


def test_without_emit_events_go_to_the_process_wide_sdk_client() -> None:
    from meterline.producers.config import set_client
    from meterline.producers.sdk import MeterlineClient
    from meterline.producers.testing import MemorySink

    sink = MemorySink()
    previous = set_client(MeterlineClient(sink, project="proj", flush_at_exit=False))
    try:
        traffic = Traffic()
        traffic.body = chat_completion(prompt=10, completion=5, cached=0)
        http = traffic.sync_client()
        client = instrument_openai(openai.OpenAI(api_key="test", max_retries=0, http_client=http))
        client.chat.completions.create(model=MINI, messages=MESSAGES)
        from meterline.producers.config import get_client

        assert get_client().flush(5.0) == 0
        (event,) = sink.of_type(ActionEvent)
        assert event.kind is ActionKind.LLM_CALL and event.project == "proj"
        assert (event.input_tokens, event.output_tokens) == (10, 5)
    finally:
        set_client(previous)

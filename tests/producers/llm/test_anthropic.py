"""The real ``anthropic`` client against canned HTTP responses, instrumented per instance."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import anthropic
import pytest

from meterline.producers.llm import (
    ModelPrice,
    PriceOverrides,
    instrument_all,
    instrument_anthropic,
    llm_context,
    uninstrument,
)
from meterline.schemas import ActionEvent
from meterline.schemas.events import ActionKind, Status
from tests.producers.llm.fixtures import CLAUDE, Traffic, api_error, message, message_stream

MESSAGES: list[Any] = [{"role": "user", "content": "Capital of France?"}]
# input_tokens 40 + cache_read 3000 + cache_creation 500
TOTAL_INPUT, OUTPUT, CACHED, WRITTEN = 3540, 120, 3000, 500
# claude-haiku-4-5: $1 input, $5 output, $0.10 cache read, $1.25 cache write per million
COST = (40 * 1 + 3000 * 0.1 + 500 * 1.25 + 120 * 5) / 1e6


def sync_client(traffic: Traffic, events: list[ActionEvent], **opts: Any) -> anthropic.Anthropic:
    client = anthropic.Anthropic(api_key="test", max_retries=0, http_client=traffic.sync_client())
    return instrument_anthropic(client, events.append, **opts)


def async_client(
    traffic: Traffic, events: list[ActionEvent], **opts: Any
) -> anthropic.AsyncAnthropic:
    client = anthropic.AsyncAnthropic(
        api_key="test", max_retries=0, http_client=traffic.async_client()
    )
    return instrument_anthropic(client, events.append, **opts)


def only(events: list[ActionEvent]) -> ActionEvent:
    assert len(events) == 1, events
    return events[0]


def assert_message_event(ev: ActionEvent, *, stream: bool = False) -> None:
    assert ev.kind is ActionKind.LLM_CALL and ev.name == "anthropic.messages"
    assert (ev.provider, ev.model) == ("anthropic", CLAUDE)
    assert (ev.input_tokens, ev.output_tokens, ev.cached_tokens) == (TOTAL_INPUT, OUTPUT, CACHED)
    assert ev.properties["cache_creation_input_tokens"] == WRITTEN
    assert ev.status is Status.SUCCESS and ev.duration_ms is not None
    assert ev.cost_usd == pytest.approx(COST)
    assert ev.properties["cost_source"] == "genai-prices"
    assert ev.properties["stop_reason"] == "end_turn"
    assert ev.properties.get("stream", False) is stream


def create(client: Any, **kwargs: Any) -> Any:
    return client.messages.create(model=CLAUDE, max_tokens=256, messages=MESSAGES, **kwargs)


def test_create_sync(traffic: Traffic, events: list[ActionEvent]) -> None:
    traffic.body = message()
    result = create(sync_client(traffic, events))
    assert result.content[0].text == "Paris."
    assert_message_event(only(events))
    assert "prompt_summary" not in only(events).properties


def test_create_async(traffic: Traffic, events: list[ActionEvent]) -> None:
    traffic.body = message()
    result = asyncio.run(create(async_client(traffic, events)))
    assert result.usage.cache_read_input_tokens == CACHED
    assert_message_event(only(events))


def test_raw_event_stream_sync(traffic: Traffic, events: list[ActionEvent]) -> None:
    traffic.body = message_stream()
    stream = create(sync_client(traffic, events), stream=True)
    assert isinstance(stream, anthropic.Stream)
    kinds = [event.type for event in stream]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert_message_event(only(events), stream=True)


def test_raw_event_stream_async(traffic: Traffic, events: list[ActionEvent]) -> None:
    traffic.body = message_stream()
    client = async_client(traffic, events)

    async def run() -> int:
        stream = await create(client, stream=True)
        return len([event async for event in stream])

    assert asyncio.run(run()) == 7  # the ping is not an event of the client
    assert_message_event(only(events), stream=True)


def test_stream_helper_sync(traffic: Traffic, events: list[ActionEvent]) -> None:
    traffic.body = message_stream()
    client = sync_client(traffic, events)
    with client.messages.stream(model=CLAUDE, max_tokens=256, messages=MESSAGES) as stream:
        assert stream.get_final_text() == "Paris."
    assert_message_event(only(events), stream=True)


def test_stream_helper_async(traffic: Traffic, events: list[ActionEvent]) -> None:
    traffic.body = message_stream()
    client = async_client(traffic, events)

    async def run() -> str:
        async with client.messages.stream(
            model=CLAUDE, max_tokens=256, messages=MESSAGES
        ) as stream:
            return "".join([text async for text in stream.text_stream])

    assert asyncio.run(run()) == "Paris."
    assert_message_event(only(events), stream=True)


@pytest.mark.parametrize(("status", "error"), [(429, anthropic.RateLimitError),
                                               (500, anthropic.InternalServerError)])  # fmt: skip
def test_http_error_is_recorded_and_reraised(
    traffic: Traffic, events: list[ActionEvent], status: int, error: type[Exception]
) -> None:
    traffic.status, traffic.body = status, api_error("rate_limit_error", "Too many")
    with pytest.raises(error, match="Too many"):
        create(sync_client(traffic, events))
    ev = only(events)
    assert (ev.status, ev.error_type, ev.model) == (Status.ERROR, error.__name__, CLAUDE)
    assert ev.properties["status_code"] == status


def test_async_http_error(traffic: Traffic, events: list[ActionEvent]) -> None:
    traffic.status, traffic.body = 500, api_error("api_error", "Internal")
    with pytest.raises(anthropic.InternalServerError):
        asyncio.run(create(async_client(traffic, events), stream=True))
    assert only(events).error_type == "InternalServerError"


def test_error_event_mid_stream(traffic: Traffic, events: list[ActionEvent]) -> None:
    traffic.body = message_stream(error=True)
    stream = create(sync_client(traffic, events), stream=True)
    with pytest.raises(anthropic.APIStatusError, match="Overloaded"):
        list(stream)
    ev = only(events)
    assert ev.status is Status.ERROR and ev.error_message and "Overloaded" in ev.error_message
    # usage from message_start is kept: the input was billed
    assert (ev.input_tokens, ev.cached_tokens) == (TOTAL_INPUT, CACHED)


def test_price_override_and_context(traffic: Traffic, events: list[ActionEvent]) -> None:
    traffic.body = message()
    overrides = PriceOverrides({f"anthropic/{CLAUDE}": ModelPrice(input=1.0, output=1.0)})
    client = sync_client(traffic, events, prices=overrides, capture_content=True)
    with llm_context(trace_id="t1", user_id="u1"):
        create(client)
    ev = only(events)
    assert ev.cost_usd == pytest.approx((TOTAL_INPUT + OUTPUT) / 1e6)
    assert ev.properties["cost_source"] == "override"
    assert (ev.trace_id, ev.user_id) == ("t1", "u1")
    assert ev.properties["completion_summary"] == "Paris."


def test_uninstrument(traffic: Traffic, events: list[ActionEvent]) -> None:
    traffic.body = message()
    client = sync_client(traffic, events)
    assert uninstrument(client) is True
    create(client)
    assert events == [] and uninstrument(client) is False


def test_stream_dropped_unread_is_still_recorded(
    traffic: Traffic, events: list[ActionEvent]
) -> None:
    traffic.body = message_stream()
    stream = create(sync_client(traffic, events), stream=True)
    assert events == []
    del stream
    gc.collect()
    ev = only(events)
    assert ev.properties["stream_completed"] is False and ev.properties["usage_available"] is False


def test_instrument_all_patches_the_classes(traffic: Traffic, events: list[ActionEvent]) -> None:
    traffic.body = message_stream()
    assert "anthropic" in instrument_all(events.append)
    try:
        client = anthropic.Anthropic(
            api_key="test", max_retries=0, http_client=traffic.sync_client()
        )
        with client.messages.stream(model=CLAUDE, max_tokens=256, messages=MESSAGES) as stream:
            stream.until_done()
        traffic.body = message()
        create(client)
    finally:
        assert uninstrument() is True
    assert [ev.properties.get("stream", False) for ev in events] == [True, False]
    for ev in events:
        assert ev.input_tokens == TOTAL_INPUT
    create(client)
    assert len(events) == 2

"""Canned provider HTTP traffic for the real openai/anthropic clients (no network, no fakes).

The clients take an ``httpx2`` client (their HTTP library); ``httpx2.MockTransport`` answers
their requests with the bodies below, which follow the providers' wire formats: JSON for
plain calls, Server-Sent Events (``event:``/``data:`` lines) for streams.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest

from meterline.producers.llm import stats
from meterline.schemas import ActionEvent

Handler = Callable[[httpx2.Request], httpx2.Response]


@dataclass
class Traffic:
    """What the mock server answers, and the JSON bodies it received."""

    status: int = 200
    body: Any = None  # a dict (JSON) or a str (SSE)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(json.loads(request.content))
        if isinstance(self.body, str):
            return httpx2.Response(
                self.status,
                content=self.body.encode(),
                headers={"content-type": "text/event-stream"},
            )
        return httpx2.Response(self.status, json=self.body)

    def sync_client(self) -> httpx2.Client:
        return httpx2.Client(transport=httpx2.MockTransport(self.handle))

    def async_client(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(transport=httpx2.MockTransport(self.handle))


@pytest.fixture
def traffic() -> Traffic:
    return Traffic()


@pytest.fixture
def events() -> list[ActionEvent]:
    """The events an instrumented client emitted (``events.append`` is the ``emit``)."""
    return []


@pytest.fixture(autouse=True)
def no_emit_failures() -> Iterator[None]:
    """Every test also asserts that recording never failed silently."""
    before = (stats.emit_failed, stats.observe_failed)
    yield
    assert (stats.emit_failed, stats.observe_failed) == before


def sse(*events: tuple[str | None, dict[str, Any] | str]) -> str:
    """Server-Sent Events: ``(event name or None, data)`` pairs."""
    out = []
    for name, data in events:
        payload = data if isinstance(data, str) else json.dumps(data)
        out.append((f"event: {name}\n" if name else "") + f"data: {payload}\n\n")
    return "".join(out)


# -- OpenAI chat completions ---------------------------------------------------------------


def chat_completion(prompt: int = 1200, completion: int = 80, cached: int = 1024) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_760_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Paris.", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
        "system_fingerprint": "fp_1",
    }


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-2",
        "object": "chat.completion.chunk",
        "created": 1_760_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_1",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def chat_stream(with_usage: bool = True) -> str:
    """Chunks, then (when the request asked for it) a usage chunk with empty choices."""
    chunks: list[tuple[str | None, dict[str, Any] | str]] = [
        (None, _chunk({"role": "assistant", "content": ""})),
        (None, _chunk({"content": "Par"})),
        (None, _chunk({"content": "is."})),
        (None, _chunk({}, finish="stop")),
    ]
    if with_usage:
        usage_chunk = {**_chunk({}), "choices": []}
        usage_chunk["usage"] = {
            "prompt_tokens": 300,
            "completion_tokens": 3,
            "total_tokens": 303,
            "prompt_tokens_details": {"cached_tokens": 256},
        }
        chunks.append((None, usage_chunk))
    chunks.append((None, "[DONE]"))
    return sse(*chunks)


# -- OpenAI responses ----------------------------------------------------------------------


def response_object(status: str = "completed", usage: bool = True) -> dict[str, Any]:
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1_760_000_000,
        "status": status,
        "model": "gpt-4o-mini-2024-07-18",
        "output": [
            {
                "type": "message",
                "id": "msg_1",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Paris.", "annotations": []}],
            }
        ]
        if status == "completed"
        else [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "error": None,
        "incomplete_details": None,
        "usage": {
            "input_tokens": 2000,
            "input_tokens_details": {"cached_tokens": 1536, "cache_write_tokens": 0},
            "output_tokens": 150,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 2150,
        }
        if usage
        else None,
    }


def responses_stream() -> str:
    created = response_object(status="in_progress", usage=False)
    return sse(
        ("response.created", {"type": "response.created", "sequence_number": 0,
                              "response": created}),
        ("response.output_text.delta", {"type": "response.output_text.delta",
                                        "sequence_number": 1, "item_id": "msg_1",
                                        "output_index": 0, "content_index": 0,
                                        "delta": "Paris.", "logprobs": []}),
        ("response.completed", {"type": "response.completed", "sequence_number": 2,
                                "response": response_object()}),
    )  # fmt: skip


# -- Anthropic messages --------------------------------------------------------------------

CLAUDE = "claude-haiku-4-5-20251001"


def anthropic_usage(**overrides: int) -> dict[str, Any]:
    return {
        "input_tokens": 40,
        "output_tokens": 120,
        "cache_read_input_tokens": 3000,
        "cache_creation_input_tokens": 500,
        **overrides,
    }


def message() -> dict[str, Any]:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": CLAUDE,
        "content": [{"type": "text", "text": "Paris."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": anthropic_usage(),
    }


def message_stream(error: bool = False) -> str:
    start = {**message(), "content": [], "stop_reason": None,
             "usage": anthropic_usage(output_tokens=1)}  # fmt: skip
    events: list[tuple[str | None, dict[str, Any] | str]] = [
        ("message_start", {"type": "message_start", "message": start}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("ping", {"type": "ping"}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "Par"}}),
    ]  # fmt: skip
    if error:
        events.append(("error", {"type": "error", "error": {
            "type": "overloaded_error", "message": "Overloaded"}}))  # fmt: skip
        return sse(*events)
    events += [
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "is."}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": 120}}),
        ("message_stop", {"type": "message_stop"}),
    ]  # fmt: skip
    return sse(*events)


def api_error(kind: str, message: str) -> dict[str, Any]:
    """An error body in both providers' shape (``error.type`` / ``error.message``)."""
    return {"type": "error", "error": {"type": kind, "message": message, "code": kind}}

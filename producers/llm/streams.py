"""Observe a client library's stream object in place, so the caller keeps the real type.

The ``openai`` and ``anthropic`` ``Stream``/``AsyncStream`` classes iterate over their
``_iterator`` attribute; we replace it with a generator that shows each item to an observer
and finishes the :class:`Call` when the stream is exhausted, fails, is closed, or is
garbage-collected unread. If a library version lacks ``_iterator`` the stream is returned
untouched and the call is recorded at once without usage (never an error for the agent).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

from meterline.producers.llm.recorder import Call, note_observe_failure

log = logging.getLogger(__name__)

S = TypeVar("S")

#: Sees each stream item; returns False to hide the item from the caller.
Observer = Callable[[Call, Any], bool]


def observe_stream(stream: S, call: Call, observer: Observer) -> S:
    """Instrument a sync stream (``openai.Stream`` / ``anthropic.Stream``) in place."""
    inner = _inner_iterator(stream, call)
    if inner is None:
        return stream
    vars(stream)["_iterator"] = _observed(inner, call, observer)
    _finish_on_close(stream, call, is_async=False)
    return stream


def observe_async_stream(stream: S, call: Call, observer: Observer) -> S:
    """Instrument an async stream (``openai.AsyncStream`` / ``anthropic.AsyncStream``) in place."""
    inner = _inner_iterator(stream, call)
    if inner is None:
        return stream
    vars(stream)["_iterator"] = _observed_async(inner, call, observer)
    _finish_on_close(stream, call, is_async=True)
    return stream


def _inner_iterator(stream: Any, call: Call) -> Any:
    try:
        inner = stream._iterator  # anthropic creates it lazily (cached_property)
        vars(stream)
    except (AttributeError, TypeError):
        # e.g. ``with_raw_response.create(stream=True)`` returns an unparsed response
        log.debug("meterline: cannot observe %s; usage not recorded", type(stream))
        call.finish()
        return None
    return inner


def _observed(inner: Iterator[Any], call: Call, observer: Observer) -> Iterator[Any]:
    completed = False
    try:
        for item in inner:
            call.mark_first_chunk()
            if _show(call, observer, item):
                yield item
        completed = True
    except Exception as exc:
        call.fail(exc)
        raise
    finally:  # also on GeneratorExit: the caller stopped early or closed the stream
        call.finish(completed=completed)


async def _observed_async(
    inner: AsyncIterator[Any], call: Call, observer: Observer
) -> AsyncIterator[Any]:
    completed = False
    try:
        async for item in inner:
            call.mark_first_chunk()
            if _show(call, observer, item):
                yield item
        completed = True
    except Exception as exc:
        call.fail(exc)
        raise
    finally:
        call.finish(completed=completed)


def _show(call: Call, observer: Observer, item: Any) -> bool:
    try:
        return observer(call, item)
    except Exception:
        note_observe_failure()
        return True


def _finish_on_close(stream: Any, call: Call, *, is_async: bool) -> None:
    """Finish the call on ``close()`` and when the stream is collected unread.

    The replacement ``close`` holds only a weak reference to the stream, so it creates no
    reference cycle (anthropic relies on prompt collection of dropped streams).
    """
    original = type(stream).close
    ref = weakref.ref(stream)

    def close() -> None:
        call.finish(completed=False)
        target = ref()
        if target is not None:
            original(target)

    async def aclose() -> None:
        call.finish(completed=False)
        target = ref()
        if target is not None:
            await original(target)

    vars(stream)["close"] = aclose if is_async else close
    finalizer = weakref.finalize(stream, call.finish, completed=False)
    finalizer.atexit = False

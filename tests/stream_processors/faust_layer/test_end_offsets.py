"""The worker's consumer: seeks never reach aiokafka with a negative or unknown offset."""

from __future__ import annotations

import asyncio
from typing import Any

from meterline.stream_processors.faust_layer.end_offsets import EndProbingConsumer


class _Thread:
    def __init__(self) -> None:
        self.seeks: list[dict[Any, int]] = []

    async def seek_wait(self, partitions: dict[Any, int]) -> None:
        self.seeks.append(dict(partitions))


def test_negative_or_unknown_seek_offsets_read_from_the_start() -> None:
    consumer: Any = object.__new__(EndProbingConsumer)
    consumer._thread = thread = _Thread()
    asyncio.run(consumer.seek_wait({"a": -2, "b": -1, "c": 0, "d": 41, "e": None}))
    assert thread.seeks == [{"a": 0, "b": 0, "c": 0, "d": 41, "e": 0}]

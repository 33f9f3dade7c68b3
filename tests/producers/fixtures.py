"""Unit-test fixtures for the SDK: a client whose sink is in memory (no broker)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from meterline.producers.config import set_client
from meterline.producers.sdk import MeterlineClient
from meterline.producers.testing import MemorySink


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def client(sink: MemorySink) -> Iterator[MeterlineClient]:
    """A client on the memory sink, also installed as the process-wide client."""
    c = MeterlineClient(sink, project="unit", flush_at_exit=False)
    old = set_client(c)
    yield c
    set_client(old)
    c.close(timeout=5)


def flushed(client: MeterlineClient, sink: MemorySink) -> MemorySink:
    assert client.flush(timeout=5) == 0
    return sink

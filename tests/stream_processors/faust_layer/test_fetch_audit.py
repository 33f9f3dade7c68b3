"""What the worker's consumer does with fetched records before Faust's fetch loop sees them:
warnings for skipped offsets, delivery instead of Faust's silent drop below a stale read
offset, and the tests-only fault injection."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace
from typing import Any, NamedTuple

import pytest

from meterline.stream_processors.faust_layer import fetch_audit
from meterline.stream_processors.faust_layer.fetch_audit import FAULT_ENV, FetchAudit


class _TP(NamedTuple):
    topic: str
    partition: int


TP = _TP("raw", 0)


class _Fetched:
    """Faust's consumer as far as ``getmany`` goes: hands out the given records."""

    def __init__(self, records: list[int]) -> None:
        self.records = records
        self._read_offset: dict[Any, int | None] = defaultdict(lambda: None)
        self.app = SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda t: True))

    async def getmany(self, timeout: float) -> Any:
        for offset in self.records:
            yield TP, SimpleNamespace(offset=offset, topic=TP.topic)


class _Consumer(FetchAudit, _Fetched):
    pass


def _drain(c: _Consumer) -> list[tuple[int, int | None]]:
    """(offset, read offset Faust would compare it with) per delivered record, advancing the
    read offset as Faust's fetch loop does."""
    seen = []

    async def run() -> None:
        async for tp, message in c.getmany(1.0):
            seen.append((message.offset, c._read_offset[tp]))
            c._read_offset[tp] = message.offset

    asyncio.run(run())
    return seen


def test_a_record_below_a_stale_read_offset_is_delivered(caplog: pytest.LogCaptureFixture) -> None:
    c = _Consumer([3, 4])
    c._read_offset[TP] = 197  # written by the fetch loop after the seek to 3
    assert _drain(c) == [(3, None), (4, 3)]  # Faust delivers a record with no read offset
    assert "below the read offset 197" in caplog.text


def test_skipped_offsets_are_reported_not_changed(caplog: pytest.LogCaptureFixture) -> None:
    c = _Consumer([158])
    c._read_offset[TP] = 3
    assert _drain(c) == [(158, 3)]
    assert "offsets 4-157 skipped" in caplog.text


def test_in_order_records_pass_untouched(caplog: pytest.LogCaptureFixture) -> None:
    c = _Consumer([5, 6, 7])
    c._read_offset[TP] = 5  # after a seek to 5
    assert _drain(c) == [(5, 5), (6, 5), (7, 6)]
    assert caplog.text == ""


def test_fault_injection_loses_each_matching_record_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAULT_ENV, "raw:*:1")
    c = _Consumer([0, 1, 2])
    assert [o for o, _ in _drain(c)] == [0, 2]
    c.records = [1, 2]  # fetched again (a re-read): delivered this time
    assert [o for o, _ in _drain(c)] == [1, 2]
    monkeypatch.delenv(FAULT_ENV)
    assert fetch_audit._fault() is None

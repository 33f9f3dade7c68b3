from __future__ import annotations

import pytest

from stream_processors.steps.dlq_limit import DlqLimit, PoisonMessageStorm


def test_a_few_invalid_records_pass() -> None:
    limit = DlqLimit(0.5, window=100, min_records=10)
    for i in range(1_000):
        limit.record(i % 10 != 0)  # 10% invalid: dead-lettered, processing goes on


def test_a_storm_stops_with_a_message_naming_the_cause() -> None:
    limit = DlqLimit(0.5, window=100, min_records=10)
    for _ in range(50):
        limit.record(True)
    with pytest.raises(PoisonMessageStorm, match="51 of the last 100 records were invalid") as info:
        for _ in range(100):
            limit.record(False, "Invalid JSON: expected value")
    assert "Last reason: Invalid JSON" in str(info.value)


def test_the_window_slides() -> None:
    limit = DlqLimit(0.5, window=10, min_records=10)
    for _ in range(100):  # alternating: exactly half invalid, never more
        limit.record(False)
        limit.record(True)


def test_no_limit() -> None:
    limit = DlqLimit(None)
    for _ in range(10_000):
        limit.record(False)
    with pytest.raises(ValueError):
        DlqLimit(1.5)

"""The processor's output producer reports a record the broker never acknowledged, though
librdkafka reports failures only (``delivery.report.only.error``)."""

from __future__ import annotations

import asyncio

import pytest

from stream_processors.embedded.broker import free_port
from stream_processors.output import CONFIG, BatchOutput, OutputDeliveryError


def test_only_failures_are_reported() -> None:
    assert CONFIG["delivery.report.only.error"] is True


def test_a_record_that_is_never_acknowledged_fails_the_flush() -> None:
    out = BatchOutput(
        f"127.0.0.1:{free_port()}",  # nobody listens: the record times out undelivered
        {"message.timeout.ms": 300, "log_level": 0},
    )
    out.send("t", b"k", b"v")
    with pytest.raises(OutputDeliveryError, match="output not delivered \\(1 errors\\)"):
        asyncio.run(out.flush(timeout_s=10))
    asyncio.run(out.flush(timeout_s=1))  # the failure was reported once; nothing is left

"""The processor's output producer: it reports a record the broker never acknowledged,
though librdkafka reports failures only (``delivery.report.only.error``), and it frames the
hot outputs into batch messages per source partition."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from meterline.embedded.broker import free_port
from meterline.schemas import framing
from meterline.schemas.framing import BATCH_HEADERS
from meterline.stream_processors.faust_layer.output import (
    CONFIG,
    FRAME_MAX_BYTES,
    FRAME_MAX_RECORDS,
    BatchOutput,
    OutputDeliveryError,
)


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


class _Recorder:
    """Stands in for librdkafka's producer in the framing tests: records each produce()."""

    def __init__(self) -> None:
        self.produced: list[tuple[str, bytes | None, bytes | None, Any]] = []

    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                **kw: Any) -> None:  # fmt: skip
        self.produced.append((topic, key, value, kw.get("headers")))

    def flush(self, timeout: float) -> int:
        return 0


def framed_output() -> tuple[BatchOutput, _Recorder]:
    out = BatchOutput("127.0.0.1:1", {"log_level": 0})
    recorder = _Recorder()
    out._producer = recorder  # type: ignore[assignment]
    return out, recorder


def test_records_of_one_source_partition_go_out_as_one_batch_message_keyed_by_the_first() -> None:
    out, rec = framed_output()
    out.send_framed("enriched", 0, b"k1", b'{"a":1}')
    out.send_framed("enriched", 1, b"k9", b'{"b":1}')
    out.send_framed("enriched", 0, b"k2", b'{"a":2}')
    out.send_framed("state", 0, b"k1", b'{"s":1}')
    assert rec.produced == []  # held until the flush
    asyncio.run(out.flush(timeout_s=1))
    assert sorted(rec.produced, key=repr) == sorted([
        ("enriched", b"k1", b'{"a":1}\n{"a":2}', BATCH_HEADERS),
        ("enriched", b"k9", b'{"b":1}', None),  # one record: a plain message
        ("state", b"k1", b'{"s":1}', None),
    ], key=repr)  # fmt: skip
    assert framing.split(rec.produced[0][2]) == [b'{"a":1}', b'{"a":2}']
    assert out.sent == {"enriched": 3, "state": 1}  # records, not messages


def test_a_batch_message_goes_out_when_it_is_full() -> None:
    out, rec = framed_output()
    for i in range(FRAME_MAX_RECORDS + 1):
        out.send_framed("t", 0, b"k", b"%d" % i)
    assert len(rec.produced) == 1 and rec.produced[0][2].count(b"\n") == FRAME_MAX_RECORDS - 1
    big = b"x" * (FRAME_MAX_BYTES // 2)
    out.send_framed("t", 0, b"k", big)  # the open batch (one record) and this one fit
    out.send_framed("t", 0, b"k", big)  # over the byte limit: the open batch goes first
    assert len(rec.produced) == 2 and rec.produced[1][2] == b"%d\n%s" % (FRAME_MAX_RECORDS, big)
    out.close()
    assert rec.produced[2][2] == big


def test_a_record_that_cannot_be_framed_goes_alone_after_its_groups_open_batch() -> None:
    out, rec = framed_output()
    out.send_framed("t", 0, b"k", b"1")
    out.send_framed("t", 0, b"k", b"2")
    out.send_framed("t", 0, b"k", b'{\n"pretty": 3}')  # a raw newline would split it
    out.send_framed("t", 0, b"k", b"x" * FRAME_MAX_BYTES)
    assert [(value, headers) for _, _, value, headers in rec.produced] == [
        (b"1\n2", BATCH_HEADERS), (b'{\n"pretty": 3}', None), (b"x" * FRAME_MAX_BYTES, None),
    ]  # fmt: skip
    assert out.sent == {"t": 4}

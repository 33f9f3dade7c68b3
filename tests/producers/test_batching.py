from __future__ import annotations

from typing import Any

from meterline.producers.batching import BatchConfig, Batcher
from meterline.producers.partitioner import murmur2, partition_for


def _cb(_err: Any, _msg: Any) -> None:
    pass


def test_murmur2_matches_kafkas_reference_values() -> None:
    # Kafka's UtilsTest.testMurmur2 (signed 32-bit there)
    cases = {
        b"21": -973932308,
        b"foobar": -790332482,
        b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829,
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        b"abc": 479470107,
    }
    for key, signed in cases.items():
        assert murmur2(key) == signed & 0xFFFFFFFF
    assert all(0 <= partition_for(k, 7) < 7 for k in cases)


def test_batches_close_on_count_and_bytes_per_partition() -> None:
    b = Batcher(BatchConfig(max_records=3, max_bytes=100, linger_s=60))
    assert b.add("t", 0, b"k", b"x" * 10, _cb) == []
    assert b.add("t", 1, b"k", b"y" * 10, _cb) == []
    assert b.add("t", 0, b"k", b"x" * 10, _cb) == []
    ready = b.add("t", 0, b"k", b"x" * 10, _cb)
    assert [(r.partition, len(r.values)) for r in ready] == [(0, 3)]
    # a record that would overflow max_bytes closes the open batch first
    assert b.add("t", 1, b"k", b"z" * 95, _cb)[0].values == [b"y" * 10]
    assert len(b) == 1
    assert [len(r.values) for r in b.drain()] == [1] and len(b) == 0


def test_due_takes_only_batches_that_lingered() -> None:
    b = Batcher(BatchConfig(max_records=100, linger_s=0.5))
    b.add("t", 0, b"k", b"v", _cb)
    opened = next(iter(b._open.values())).opened_at
    assert b.due(opened + 0.1) == []
    assert len(b.due(opened + 0.6)) == 1


def test_batching_off_when_max_records_is_one() -> None:
    assert not BatchConfig(max_records=1).enabled and BatchConfig().enabled


def test_records_without_a_callback_are_counted_not_listed() -> None:
    b = Batcher(BatchConfig(max_records=3, linger_s=60))
    b.add("t", 0, b"k", b"a", None)
    b.add("t", 0, b"k", b"b", _cb)
    (batch,) = b.add("t", 0, b"k", b"c", None)
    assert batch.values == [b"a", b"b", b"c"] and batch.callbacks == [_cb]
    assert batch.counted == 2

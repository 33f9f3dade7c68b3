"""Kafka's size rule mirrored before every produce, and the state bounds derived from it."""

from __future__ import annotations

from typing import Any

import pytest

from meterline.schemas import framing
from meterline.stream_processors.faust_layer.output import BatchOutput
from meterline.stream_processors.sizes import (
    KAFKA_DEFAULT_MAX_MESSAGE_BYTES,
    OutputTooLarge,
    StateBounds,
    TopicLimits,
    batch_bytes,
)
from meterline.stream_processors.state.dedupe import PersistentDedupe
from meterline.stream_processors.steps.dedupe import DedupeWindow
from meterline.stream_processors.steps.merge import TRUNCATED_KEY, merge_metadata
from tests.stream_processors.faust_layer.test_output import _Recorder


def test_the_batch_size_is_kafkas_v2_framing_plus_lz4s_worst_case() -> None:
    # a one-record v2 batch: 61-byte header; record: length, attributes, timestamp and
    # offset deltas, key length + key, value length + value, header count (zigzag varints)
    key, value = b"k", b"v" * 100
    record_body = 1 + 1 + 1 + (1 + 1) + (2 + 100) + 1
    uncompressed = 61 + 2 + record_body
    assert uncompressed <= batch_bytes(key, value) <= uncompressed + 64
    big = b"x" * 1_048_000  # incompressible at worst: lz4 adds up to ~8 bytes per 64 KiB
    assert batch_bytes(None, big) >= 61 + len(big) + 8 * (len(big) // 65_536)
    assert batch_bytes(b"k", b"v", framing.BATCH_HEADERS) > batch_bytes(b"k", b"v")


def test_a_record_over_its_topics_limit_is_refused_before_anything_is_produced() -> None:
    limits = TopicLimits({"small": KAFKA_DEFAULT_MAX_MESSAGE_BYTES}, default=8 * 1_048_576)
    out = BatchOutput("127.0.0.1:1", {"log_level": 0}, limits=limits)
    recorder = _Recorder()
    out._producer = recorder  # type: ignore[assignment]
    near = b"x" * (KAFKA_DEFAULT_MAX_MESSAGE_BYTES - 300)  # the framing still fits
    out.send("small", b"k", near)
    with pytest.raises(OutputTooLarge, match=r"max\.message\.bytes of 1,048,588"):
        out.send("small", b"k", b"x" * KAFKA_DEFAULT_MAX_MESSAGE_BYTES)
    with pytest.raises(OutputTooLarge):
        out.send_framed("small", 0, b"k", b"x" * 2_000_000)
    out.send("large", b"k", b"x" * 2_000_000)  # another topic, another limit
    assert [(t, len(v or b"")) for t, _, v, _ in recorder.produced] == [
        ("small", len(near)), ("large", 2_000_000),
    ]  # fmt: skip
    assert out.sent == {"small": 1, "large": 1}


def test_framed_messages_are_cut_to_fit_their_topic() -> None:
    limit = KAFKA_DEFAULT_MAX_MESSAGE_BYTES
    out = BatchOutput("127.0.0.1:1", {"log_level": 0}, limits=TopicLimits({}, default=limit))
    recorder = _Recorder()
    out._producer = recorder  # type: ignore[assignment]
    for i in range(40):
        out.send_framed("t", 0, b"k" * 256, b"r" * 100_000 + str(i).encode())
    out.emit_frames()
    assert len(recorder.produced) > 3
    for _, key, value, headers in recorder.produced:
        assert batch_bytes(key, value, headers) <= limit


def test_merged_metadata_is_bounded_by_key_count_and_bytes_and_marked() -> None:
    bounds = StateBounds(metadata_keys=4, metadata_bytes=200)
    merged, dropped = merge_metadata({"a": 1}, {"b": 2}, bounds)
    assert (merged, dropped) == ({"a": 1, "b": 2}, 0)  # within the bounds: the plain union
    merged, dropped = merge_metadata(merged, {"c": 3, "d": 4, "e": 5}, bounds)
    # four keys at most, the marker included: the keys held stay, new ones in order
    assert (merged, dropped) == ({"a": 1, "b": 2, "c": 3, TRUNCATED_KEY: 2}, 2)
    merged, dropped = merge_metadata(merged, {"a": "x" * 500, "b": 9}, bounds)
    # a changed value that would cross the byte bound keeps the old one; one that fits wins
    assert (merged["a"], merged["b"], merged[TRUNCATED_KEY], dropped) == (1, 9, 3, 1)


def test_ten_records_of_a_large_key_each_keep_the_state_near_one_megabyte() -> None:
    merged: dict[str, Any] = {}
    for i in range(10):
        merged, _ = merge_metadata(merged, {f"k{i}": "x" * 940_000})
    assert list(merged) == ["k0", TRUNCATED_KEY] and merged[TRUNCATED_KEY] == 9
    many, dropped = merge_metadata({}, {f"k{i}": i for i in range(5_000)})
    assert len(many) == 1_024 and dropped == 5_000 - 1_023


def test_state_bounds_fit_the_smallest_topic_limit() -> None:
    assert StateBounds.within(8 * 1_048_576) == StateBounds()
    assert StateBounds.within(KAFKA_DEFAULT_MAX_MESSAGE_BYTES) == StateBounds()
    small = StateBounds.within(500_000)
    assert small.metadata_bytes == small.parked_bytes == small.rule_bytes == 500_000 - 16_384
    assert small.dedupe_digests * 16 < 500_000


class _Table:
    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.sent: list[tuple[str, int]] = []

    def send_changelog(self, partition: int, key: str, value: bytes | None) -> None:
        self.sent.append((key, len(value or b"")))


def test_dedupe_blobs_are_split_to_fit_one_message_and_rebuilt_whole() -> None:
    table = _Table()
    dedupe = PersistentDedupe(table, DedupeWindow(), max_digests=3)
    b = dedupe.window.bucket  # the bucket of processing time: inside the window
    accepted = [(0, 7, (bytes([i]) * 16, b)) for i in range(8)]  # one bucket, one offset
    dedupe.mark_seen(accepted)
    assert table.sent == [(f"0/{b}/7", 48), (f"0/{b}/7/1", 48), (f"0/{b}/7/2", 32)]
    again = PersistentDedupe(table, DedupeWindow())
    assert again.rebuild() == 8


def test_an_event_whose_enriched_output_is_too_large_is_dead_lettered_not_marked_seen() -> None:
    import asyncio

    from meterline.schemas import ActionEvent, DeadLetter, TrajectoryRecord, encode
    from tests.stream_processors.test_pipeline import T0, TOPICS, Store, batch, processor

    limits = TopicLimits({TOPICS.enriched: 6_000}, default=8 * 1_048_576)
    out = BatchOutput("127.0.0.1:1", {"log_level": 0}, limits=limits)
    recorder = _Recorder()
    out._producer = recorder  # type: ignore[assignment]
    tables = {name: Store() for name in ("trajectories", "pending", "seen")}
    p = processor(out, tables)  # type: ignore[arg-type]
    trajectory = TrajectoryRecord(trace_id="t", timestamp=T0, metadata={"m": "x" * 3_000})
    wide = ActionEvent(event_id="wide", name="x", trace_id="t", timestamp=T0,
                       properties={"p": "y" * 3_000})  # fmt: skip
    narrow = ActionEvent(event_id="narrow", name="x", trace_id="t", timestamp=T0)
    asyncio.run(p.process(batch(TOPICS.trajectories, 0, trajectory)))
    events = batch(TOPICS.actions, 5, wide) + batch(TOPICS.actions, 6, narrow)
    asyncio.run(p.process(events))
    by_topic: dict[str, list[bytes]] = {}
    for topic, _, value, _ in recorder.produced:
        by_topic.setdefault(topic, []).append(value or b"")
    [letter] = [DeadLetter.model_validate_json(v) for v in by_topic[TOPICS.dead_letters]]
    assert (letter.error_type, letter.offset, letter.payload) == ("output_too_large", 5,
                                                                  encode(wide))  # fmt: skip
    assert len(by_topic[TOPICS.enriched]) == 1  # the narrow one, joined
    assert p.joiner.joined == 1 and p.dead_letters == 1
    # not marked seen: replayed once the topic accepts it, it is not a duplicate
    assert p.dedupe.window.admit(wide, set()) is not None
    assert p.dedupe.window.admit(narrow, set()) is None

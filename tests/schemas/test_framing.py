from __future__ import annotations

from datetime import UTC, datetime

from meterline.schemas import (
    ActionEvent,
    ActionKind,
    EnrichedEvent,
    TrajectoryRecord,
    decode_as,
    encode,
)
from meterline.schemas.codec import encode_enriched, encode_timestamp
from meterline.schemas.derived import Pricing
from meterline.schemas.framing import BATCH_HEADERS, frameable, is_batch, join, split


def test_batch_header_detection_accepts_list_and_mapping_forms() -> None:
    assert is_batch(BATCH_HEADERS)
    assert is_batch([("Content-Type", b" application/x-ndjson ")])
    assert is_batch({"content-type": "application/x-ndjson"})
    assert not is_batch(None) and not is_batch([]) and not is_batch([("content-type", None)])
    assert not is_batch([("content-type", b"application/json")])


def test_split_returns_each_record_byte_for_byte_and_skips_blank_lines() -> None:
    values = [b'{"a":1}', b'{"b":"x\\ny"}', b"not json at all"]
    assert all(frameable(v) for v in values)
    assert split(join(values)) == values
    assert split(join(values) + b"\n\n") == values
    assert split(b"") == [] and split(None) == []
    assert not frameable(b'{\n"pretty": true\n}')


def test_assembled_enriched_bytes_equal_the_model_encoding() -> None:
    ts = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    ev = ActionEvent(
        project="p", event_id="e1", trace_id="t1", name="n", kind=ActionKind.LLM_CALL,
        model="gpt", input_tokens=3, timestamp=ts,
    )
    traj = TrajectoryRecord(project="p", trace_id="t1", user_id="u", started_at=ts)
    now = datetime(2026, 5, 1, 12, 0, 1, 250, tzinfo=UTC)
    for trajectory, version in ((traj, 2), (None, 1)):
        built = EnrichedEvent(event=ev, trajectory=trajectory, version=version, processed_at=now)
        fast = encode_enriched(
            encode(ev),
            encode(trajectory) if trajectory else None,
            version,
            encode_timestamp(now),
        )
        assert fast == encode(built)
        assert decode_as(EnrichedEvent, fast) == built
    pricing = Pricing(computed_cost_usd=0.5, billed_cost_usd=0.5, cost_source="computed",
                      price_status="priced", price_book="genai-prices@0.2.5+cp1")  # fmt: skip
    built = EnrichedEvent(event=ev, version=1, processed_at=now, pricing=pricing)
    fast = encode_enriched(encode(ev), None, 1, encode_timestamp(now), encode(pricing))
    assert fast == encode(built) and decode_as(EnrichedEvent, fast) == built

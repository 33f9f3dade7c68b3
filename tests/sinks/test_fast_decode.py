"""The sink's msgspec fast path against pydantic: a strict subset, with equal rows."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from typing import Any

from meterline.demo.traffic import generate
from meterline.schemas import (
    VERSION_JOINED,
    VERSION_UNJOINED,
    InvalidRecord,
    TrajectoryState,
    decode_as,
    encode,
    utc_now,
)
from meterline.schemas.codec import encode_enriched, encode_state
from meterline.sinks.clickhouse.fast_decode import FastEnriched, decode_enriched, decode_state
from meterline.sinks.clickhouse.rows import (
    SinkEnrichedEvent,
    event_row,
    read_enriched,
    read_state,
    trajectory_row,
)
from tests.schemas.test_fast_decode import (
    ACTION,
    HOSTILE_VALUES,
    TELEMETRY,
    dumps,
    hostile_inputs,
    mutations,
)

PROCESSED_AT = b'"2026-03-04T05:06:08.000001Z"'
TRAJECTORY: dict[str, Any] = {
    "schema_version": 1, "type": "trajectory", "project": "p1", "trace_id": "t-1",
    "trajectory_id": "tr-1", "user_id": "u-t", "anonymous_id": "a-t", "agent_id": "ag-t",
    "status": "success", "started_at": "2026-03-04T05:00:00Z", "ended_at": None,
    "timestamp": "2026-03-04T05:06:07Z", "metadata": {"k": [1, 2]},
}  # fmt: skip
ENVELOPE: dict[str, Any] = {
    "schema_version": 1, "type": "enriched", "event": {**ACTION, "user_id": None},
    "trajectory": TRAJECTORY, "version": 2, "processed_at": "2026-03-04T05:06:08Z",
}  # fmt: skip


def pydantic_row(data: bytes) -> tuple[Any, ...]:
    return event_row(decode_as(SinkEnrichedEvent, data))


def outcome(decode: Any, data: bytes) -> tuple[Any, ...]:
    """What a decoder did with ``data``, comparable across the two paths: the row as reprs
    (1 is not 1.0, an aware datetime is not a naive one)."""
    try:
        row = decode(data)
    except InvalidRecord as exc:
        return ("rejected", exc.reason, exc.error_type)
    except Exception as exc:
        return ("raised", type(exc).__name__)
    return ("accepted", [repr(_now_masked(value)) for value in row])


def _now_masked(value: Any) -> Any:
    """pydantic fills a missing ``processed_at`` or event ``timestamp`` with the time of
    decoding: equal across the paths only up to when each ran."""
    if isinstance(value, datetime) and abs(value - utc_now()) < timedelta(minutes=5):
        return "<now>"
    return value


def agree(data: bytes, reference_row: Any, fast_decode: Any, row: Any, both: Any) -> bool:
    """The fast path's promise for one input: what it accepts, pydantic accepts with the same
    row (``reference_row``: pydantic's; ``row`` of the fast Struct), and the sink's decoder
    (``both``) does what pydantic does. True if the fast path took it."""
    reference = outcome(reference_row, data)
    fast = fast_decode(data)
    if fast is not None:
        assert reference[0] == "accepted", (data, reference)
        assert outcome(lambda _: row(fast), data) == reference, data
    assert outcome(both, data) == reference, data
    return fast is not None


def check(data: bytes) -> bool:
    """:func:`agree` for an enriched event."""
    sink = lambda d: event_row(read_enriched(d))  # noqa: E731  (versions: test_versions.py)
    return agree(data, pydantic_row, decode_enriched, event_row, sink)


def wrap(event: bytes | str, trajectory: bytes | None = None) -> bytes:
    raw = event.encode("utf-8", "surrogatepass") if isinstance(event, str) else event
    return encode_enriched(raw, trajectory, VERSION_JOINED, PROCESSED_AT)


def test_generated_traffic_takes_the_fast_path_with_equal_rows() -> None:
    records = generate(project="p", events=500).records
    trajectories = {r.trace_id: encode(r) for r in records if r.type == "trajectory"}
    events = [r for r in records if r.type != "trajectory"]
    for r in events:
        assert check(wrap(encode(r), trajectories.get(r.trace_id)))  # joined
        assert check(encode_enriched(encode(r), None, VERSION_UNJOINED, PROCESSED_AT))
    assert check(dumps(ENVELOPE))
    assert check(json.dumps(ENVELOPE).encode())  # ASCII escapes


def test_hostile_envelopes_agree_with_pydantic() -> None:
    inputs = [dumps({k: v for k, v in ENVELOPE.items() if k != key}) for key in ENVELOPE]
    for key in [*ENVELOPE, "unknown"]:
        inputs += [dumps({**ENVELOPE, key: value}) for value in HOSTILE_VALUES]
    for key in [*TRAJECTORY, "unknown"]:
        inputs += [
            dumps({**ENVELOPE, "trajectory": {**TRAJECTORY, key: value}})
            for value in HOSTILE_VALUES
        ]
    inputs += [dumps({**ENVELOPE, "event": TELEMETRY, "trajectory": None})]
    inputs += [b"", b"null", b"{}", b"[]", dumps(ENVELOPE)[:-1], dumps(ENVELOPE) + b" x"]
    taken = sum(check(data) for data in inputs)
    assert 100 < taken < len(inputs)  # the corpus exercises both paths


def test_hostile_events_agree_with_pydantic() -> None:
    trajectory = dumps(TRAJECTORY)
    inputs = [wrap(event, trajectory) for event in hostile_inputs()]
    inputs += [wrap(event) for event in mutations(1_500, seed=20261128)]
    taken = sum(check(data) for data in inputs)
    assert 50 < taken < len(inputs) - 500


def test_random_byte_edits_agree_with_pydantic() -> None:
    rng = random.Random(20261128)
    base = dumps(ENVELOPE)
    for _ in range(1_000):
        data = bytearray(base)
        i = rng.randrange(len(data))
        data[i] = rng.choice(b' "\\{}[]:,0a\x00\x7f\xff\xc3')
        check(bytes(data))


def test_what_the_fast_path_gives_is_what_the_row_reads() -> None:
    fast = decode_enriched(dumps(ENVELOPE))
    assert isinstance(fast, FastEnriched) and fast.trajectory is not None
    assert fast.processed_at.tzinfo is not None and fast.version == 2
    row = event_row(fast)
    assert row[8] == "u-t"  # user_id from the trajectory: the event has none


def check_state(data: bytes) -> bool:
    """:func:`agree` for a trajectory state."""
    pydantic = lambda d: trajectory_row(decode_as(TrajectoryState, d))  # noqa: E731
    sink = lambda d: trajectory_row(read_state(d))  # noqa: E731
    return agree(data, pydantic, decode_state, trajectory_row, sink)


def test_trajectory_states_take_the_fast_path_with_equal_rows() -> None:
    from meterline.stream_processors.steps.join import TrajectoryJoiner
    from meterline.stream_processors.steps.validate import validate

    joiner = TrajectoryJoiner({}, {})
    records = [r for r in generate(project="p", events=500).records if r.type == "trajectory"]
    for r in records:  # as the processor writes them: merged, with their versions
        applied = joiner.apply_trajectory_encoded(validate(encode(r), topic="t", partition=0,
                                                           offset=0))  # type: ignore[arg-type]
        assert check_state(applied.state_json)
    assert check_state(encode_state(dumps(TRAJECTORY), 3))
    minimal = {"type": "trajectory", "trace_id": "t", "timestamp": "2026-03-04T05:06:07Z"}
    assert check_state(encode_state(dumps(minimal), 1))  # status and version defaulted


def test_hostile_states_agree_with_pydantic() -> None:
    state = {"type": "trajectory_state", "trajectory": TRAJECTORY, "version": 2,
             "schema_version": 1}  # fmt: skip
    inputs = [dumps({k: v for k, v in state.items() if k != key}) for key in state]
    for key in [*state, "unknown"]:
        inputs += [dumps({**state, key: value}) for value in HOSTILE_VALUES]
    for key in [*TRAJECTORY, "unknown"]:
        inputs += [
            dumps({**state, "trajectory": {**TRAJECTORY, key: value}}) for value in HOSTILE_VALUES
        ]
        inputs.append(
            dumps({**state, "trajectory": {k: v for k, v in TRAJECTORY.items() if k != key}})
        )
    inputs += [b"", b"null", b"{}", b"[]", dumps(state)[:-1], dumps(state) + b" x"]
    rng = random.Random(20261129)
    base = dumps(state)
    for _ in range(1_000):
        data = bytearray(base)
        data[rng.randrange(len(data))] = rng.choice(b' "\\{}[]:,0a\x00\x7f\xff\xc3')
        inputs.append(bytes(data))
    taken = sum(check_state(data) for data in inputs)
    assert 100 < taken < len(inputs) - 500  # the corpus exercises both paths


def test_priced_events_agree_with_pydantic() -> None:
    """The processor's ``pricing`` object (stream_processors/pricing): the step's JSON takes
    the fast path with pydantic's row; hostile pricing values agree too."""
    from meterline.stream_processors.pricing import PricingStep

    step = PricingStep()
    records = [r for r in generate(project="p", events=300).records if r.type == "action"]
    priced = [r for r in records if getattr(r, "kind", None) == "llm_call"]
    assert priced
    for r in priced:
        data = encode_enriched(encode(r), None, VERSION_UNJOINED, PROCESSED_AT,
                               step.price_json(r))  # fmt: skip
        assert check(data)
    good = {"computed_cost_usd": 0.5, "billed_cost_usd": 0.5, "cost_source": "computed",
            "price_status": "priced", "price_book": "b"}  # fmt: skip
    inputs = [dumps({**ENVELOPE, "pricing": good}), dumps({**ENVELOPE, "pricing": None})]
    for key in [*good, "unknown"]:
        inputs += [dumps({**ENVELOPE, "pricing": {**good, key: v}}) for v in HOSTILE_VALUES]
    inputs += [dumps({**ENVELOPE, "pricing": {**good, "billed_cost_usd": 1e13}})]
    taken = sum(check(data) for data in inputs)
    assert 2 <= taken < len(inputs)

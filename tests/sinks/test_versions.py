"""The processor's version scheme as the sink enforces it (:mod:`meterline.schemas.versions`): every
version the processor emits is accepted, an impossible one is refused naming it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from meterline.schemas import (
    VERSION_JOINED,
    VERSION_UNJOINED,
    ActionEvent,
    InvalidRecord,
    TrajectoryRecord,
    encode,
    utc_now,
)
from meterline.schemas.codec import encode_enriched, encode_state
from meterline.schemas.outcomes import Outcome
from meterline.schemas.versions import IMPOSSIBLE_VERSION, MAX_CLOCK_AHEAD, MAX_TRAJECTORY_VERSION
from meterline.sinks.clickhouse.rows import COLUMNS, enriched_row, sink_outcome_row, state_row

PROCESSED_AT = b'"2026-11-28T00:00:00.123456Z"'
EVENT = encode(ActionEvent(project="victim", event_id="e", name="n", cost_usd=0.05))
STATE = encode(TrajectoryRecord(project="victim", trace_id="t"))


def refused(decode: object, data: bytes) -> str:
    with pytest.raises(InvalidRecord) as info:
        decode(data)  # type: ignore[operator]
    assert info.value.error_type == IMPOSSIBLE_VERSION
    return info.value.reason


@pytest.mark.parametrize("version", [VERSION_UNJOINED, VERSION_JOINED])
def test_the_event_versions_the_processor_emits_are_accepted(version: int) -> None:
    row = enriched_row(encode_enriched(EVENT, None, version, PROCESSED_AT))
    assert row[list(COLUMNS["events"]).index("version")] == version


@pytest.mark.parametrize("version", [0, 3, 4_000_000_000, -1])
def test_an_event_version_the_processor_never_emits_is_refused_naming_it(version: int) -> None:
    data = encode_enriched(EVENT, None, version, PROCESSED_AT)
    assert f"version: {version} " in refused(enriched_row, data)


def test_trajectory_versions_count_records_and_are_bounded() -> None:
    for version in (1, 2, 1_000, MAX_TRAJECTORY_VERSION):
        assert state_row(encode_state(STATE, version))[-1] == version
    for version in (0, MAX_TRAJECTORY_VERSION + 1, 4_000_000_000):
        assert f"version: {version} " in refused(state_row, encode_state(STATE, version))


def test_an_outcome_computed_in_the_future_is_refused() -> None:
    def outcome(ahead: timedelta) -> bytes:
        return encode(
            Outcome(outcome_id="o", project="victim", rule_id="r", rule_revision=1,
                    rule_name="r", config_version=1, trace_id="t", event_ids=("e",),
                    value=1.0, timestamp=utc_now(), computed_at=utc_now() + ahead)
        )  # fmt: skip

    assert sink_outcome_row(outcome(timedelta(minutes=-5)))[-1] > 0
    assert sink_outcome_row(outcome(MAX_CLOCK_AHEAD - timedelta(minutes=1)))[-1] > 0
    assert "computed_at: " in refused(sink_outcome_row, outcome(timedelta(days=3650)))

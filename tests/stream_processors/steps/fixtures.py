"""Test helpers over the steps' production API: each goes through the encoded path the
processor runs (``join_encoded``, ``apply_trajectory_encoded``, ``sweep_pending_encoded``,
``release_encoded``, ``admit``) and gives the result as a user would see it: enriched events
decoded from their wire form."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from meterline.schemas import (
    VERSION_JOINED,
    VERSION_UNJOINED,
    EnrichedEvent,
    TrajectoryState,
    decode_as,
)
from meterline.schemas.codec import encode_timestamp
from meterline.schemas.fast_decode import AnyEvent, AnyTrajectory
from meterline.stream_processors.steps.dedupe import DedupeWindow
from meterline.stream_processors.steps.enriched import encode_enriched_event
from meterline.stream_processors.steps.join import TrajectoryJoiner
from meterline.stream_processors.steps.parked import ParkedEvents

PROCESSED_AT = datetime(2026, 1, 1, tzinfo=UTC)


def enriched(
    event: AnyEvent, event_json: bytes | None, trajectory_json: bytes | None, version: int
) -> EnrichedEvent:
    """The enriched event as the processor encodes it, decoded (``processed_at``:
    :data:`PROCESSED_AT`)."""
    wire = encode_enriched_event(
        event, event_json, trajectory_json, version, encode_timestamp(PROCESSED_AT)
    )
    return decode_as(EnrichedEvent, wire)


def join(
    j: TrajectoryJoiner, event: AnyEvent, partition: int = 0, now: float = 0.0
) -> EnrichedEvent | None:
    """Enrich one (deduplicated) event; None while it is held for the grace period."""
    out = j.join_encoded(event, partition, now)
    return None if out is None else enriched(event, None, out[0], out[1])


def apply(
    j: TrajectoryJoiner, record: AnyTrajectory, partition: int = 0, now: float = 0.0
) -> tuple[TrajectoryState, list[EnrichedEvent]]:
    """Merge a trajectory record; its new state and the late-joined events."""
    applied = j.apply_trajectory_encoded(record, partition, now)
    late = [enriched(e, e_json, applied.trajectory_json, VERSION_JOINED)
            for e, e_json in applied.late]  # fmt: skip
    return applied.state, late


def sweep(
    j: TrajectoryJoiner, now: float, partitions: Iterable[int] | None = None
) -> list[EnrichedEvent]:
    """The events the grace sweep sends out, unjoined."""
    due = j.sweep_pending_encoded(now, partitions)
    return [enriched(e, e_json, None, VERSION_UNJOINED) for e, e_json in due]


def release(parked: ParkedEvents, key: str) -> list[tuple[Any, bool]]:
    """Remove the trace's parked events; each with whether it went out before."""
    return [(event, sent) for event, _, sent in parked.release_encoded(key)]


def is_duplicate(w: DedupeWindow, event: AnyEvent, in_flight: set[bytes]) -> bool:
    """True if already admitted and marked, or accepted earlier in the same batch."""
    return w.admit(event, in_flight) is None

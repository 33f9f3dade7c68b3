"""Fast path for the sink's enriched events and trajectory states: msgspec Structs beside
:class:`~meterline.sinks.clickhouse.rows.SinkEnrichedEvent` and
:class:`~meterline.schemas.derived.TrajectoryState`,
as :mod:`meterline.schemas.fast_decode` is for the processor's raw records (and built on its
Structs).

Contract: :func:`decode_enriched` (:func:`decode_state`) accepts a strict subset of what
``decode_as(SinkEnrichedEvent, ...)`` (``decode_as(TrajectoryState, ...)``) accepts, with
equal field values, and returns None for anything else (never raises); the sink then decodes
with pydantic, which reads the lax forms
or gives the precise dead-letter reason. ``tests/sinks/test_fast_decode.py`` holds
the two paths against each other, row for row. Stricter than the models: ``processed_at``
and ``type`` are required, ints are JSON integers, and the event follows
:mod:`meterline.schemas.fast_decode`'s rules. The trajectory is read for the ids the row uses only,
the rest skipped (as :class:`~meterline.sinks.clickhouse.rows.TrajectoryRef` does).

It exists for speed (figures: docs/benchmarks.md, the sink's section).
"""

from __future__ import annotations

from datetime import datetime
from math import isfinite
from typing import TYPE_CHECKING, Literal

import msgspec
from msgspec.structs import force_setattr

from meterline.schemas import VERSION_UNJOINED, TrajectoryStatus
from meterline.schemas.common import SCHEMA_VERSION
from meterline.schemas.fast_decode import (
    Cost,
    FastEvent,
    FastTrajectoryRecord,
    Id,
    Version,
    check_ids,
    decode_checked,
    maybe_too_deep,
    parse_utc,
)


class FastTrajectoryRef(msgspec.Struct, frozen=True):
    """:class:`~meterline.sinks.clickhouse.rows.TrajectoryRef`: the ids an ``events`` row takes from
    the trajectory; other fields are skipped unread."""

    trajectory_id: Id | None = None
    user_id: Id | None = None
    anonymous_id: Id | None = None
    agent_id: Id | None = None


class FastPricing(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """:class:`~meterline.schemas.derived.Pricing`, decoded by msgspec."""

    computed_cost_usd: Cost | None = None
    billed_cost_usd: Cost = 0.0
    cost_source: Literal["provider", "computed", "none", "reported"] = "none"
    price_status: Literal["priced", "unpriced", "invalid_tokens"] = "unpriced"
    price_book: str = ""


class FastEnriched(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type", tag="enriched",
    kw_only=True,
):  # fmt: skip
    """:class:`~meterline.sinks.clickhouse.rows.SinkEnrichedEvent`, decoded by msgspec."""

    event: FastEvent
    if TYPE_CHECKING:
        processed_at: datetime
    else:
        processed_at: str  # parsed by _finish, as meterline.schemas.fast_decode does for timestamps
    trajectory: FastTrajectoryRef | None = None
    version: int = VERSION_UNJOINED
    schema_version: Version = SCHEMA_VERSION
    pricing: FastPricing | None = None

    def _finish(self) -> None:
        """The checks msgspec cannot express, and ``processed_at`` parsed; raises for
        anything left to pydantic."""
        self.event._finish()
        p = self.pricing
        if p is not None and not (
            isfinite(p.billed_cost_usd)
            and (p.computed_cost_usd is None or isfinite(p.computed_cost_usd))
        ):
            raise ValueError("non-finite cost left to pydantic")
        t = self.trajectory
        if t is not None:
            check_ids((t.trajectory_id, t.user_id, t.anonymous_id, t.agent_id))
        force_setattr(self, "processed_at", parse_utc(self.processed_at))


_DECODER = msgspec.json.Decoder(FastEnriched)


def decode_enriched(data: bytes) -> FastEnriched | None:
    """The enriched event, if the fast path accepts ``data``; else None (never raises)."""
    try:
        if maybe_too_deep(data):
            return None
        if not data.isascii():
            data.decode()  # msgspec does not check UTF-8 in the trajectory fields it skips
        enriched: FastEnriched = _DECODER.decode(data)
        enriched._finish()
    except Exception:  # whatever msgspec or the checks refuse is pydantic's to judge
        return None
    return enriched


class FastTrajectoryState(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type",
    tag="trajectory_state", kw_only=True,
):  # fmt: skip
    """:class:`~meterline.schemas.derived.TrajectoryState`, decoded by msgspec. After
    :func:`decode_state` the trajectory's unset ``status`` and ``schema_version`` hold the
    model's defaults."""

    trajectory: FastTrajectoryRecord
    version: int = 1
    schema_version: Version = SCHEMA_VERSION

    def _finish(self) -> None:
        t = self.trajectory
        t._finish()
        if t.status is msgspec.UNSET:
            force_setattr(t, "status", TrajectoryStatus.RUNNING)
        if t.schema_version is msgspec.UNSET:
            force_setattr(t, "schema_version", SCHEMA_VERSION)


_STATE_DECODER = msgspec.json.Decoder(FastTrajectoryState)


def decode_state(data: bytes) -> FastTrajectoryState | None:
    """The trajectory state, if the fast path accepts ``data``; else None (never raises)."""
    state: FastTrajectoryState | None = decode_checked(_STATE_DECODER, data)
    return state

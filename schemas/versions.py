"""The processor's version scheme: which ReplacingMergeTree version each output row may carry.

ClickHouse keeps the row with the highest version per key, so a version is a claim to win.
The processor derives every version by one rule, stated here once; the sink refuses a row
whose version the rule cannot produce (dead letter ``impossible_version``), so a client that
can write an output topic cannot pin a row above every real one (the Kafka ACLs in
docs/deployment.md keep such clients out in the first place).

- ``<prefix>.enriched`` (``events.version``): :data:`~meterline.schemas.derived.VERSION_UNJOINED`
(1)
  when the event went out before its trajectory was known,
  :data:`~meterline.schemas.derived.VERSION_JOINED`
  (2) when joined (``stream_processors/steps/join.py``, ``pipeline.py``). Nothing else: a
  forged event row can at most tie a real joined one, never outrank it.
- ``<prefix>.trajectory-state`` (``trajectories.version``): 1 for a trace's first record,
  +1 for each further record merged, +1 for the idle close (``join.py``:
  ``apply_trajectory_encoded``, ``sweep_idle``): at most the number of trajectory records the
  trace ever sent, plus one.
  :data:`MAX_TRAJECTORY_VERSION` bounds it far above what an agent sends (a start and an end
  per run; the SDK sends no more) and far below the column's UInt32 range.
- ``<prefix>.outcomes`` (``outcomes.version``): ``computed_at`` in microseconds
  (``stream_processors/rules/stage.py`` stamps processing time; the sink derives the
  version, ``sinks/clickhouse/rows.py``). ``computed_at`` must lie between
  :data:`MIN_COMPUTED_AT` and the sink's clock plus :data:`MAX_CLOCK_AHEAD`: a forged
  outcome can outrank a real one by at most that allowance, and any recomputation after it
  wins again.

A change to how the processor derives a version changes this module in the same commit.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from meterline.schemas.derived import VERSION_JOINED, VERSION_UNJOINED

#: ``error_type`` of a row whose version the scheme cannot produce.
IMPOSSIBLE_VERSION = "impossible_version"
#: The versions an enriched event is emitted with.
ENRICHED_VERSIONS = frozenset({VERSION_UNJOINED, VERSION_JOINED})
#: Highest trajectory-state version accepted (a trace would need this many records).
MAX_TRAJECTORY_VERSION = 1 << 24
#: Earliest outcome ``computed_at`` accepted (as
# :class:`meterline.schemas.validation.TimeBounds`).
MIN_COMPUTED_AT = datetime(2000, 1, 1, tzinfo=UTC)
#: How far an outcome's ``computed_at`` may be ahead of the sink's clock (clock skew between
#: the processor's and the sink's hosts).
MAX_CLOCK_AHEAD = timedelta(hours=1)


def enriched_version_problem(version: int) -> str | None:
    """Why an enriched event's ``version`` is impossible, or None when the scheme allows it."""
    if version in ENRICHED_VERSIONS:
        return None
    return (
        f"version: {version} is not a version the processor emits for an enriched event "
        f"({VERSION_UNJOINED} unjoined, {VERSION_JOINED} joined)"
    )


def trajectory_version_problem(version: int) -> str | None:
    """Why a trajectory state's ``version`` is impossible, or None when the scheme allows it."""
    if 1 <= version <= MAX_TRAJECTORY_VERSION:
        return None
    return (
        f"version: {version} is not a version the processor emits for a trajectory state "
        f"(1 to {MAX_TRAJECTORY_VERSION:,}: one per record of the trace, plus its close)"
    )


def computed_at_problem(computed_at: datetime, now: datetime) -> str | None:
    """Why an outcome's ``computed_at`` (its version) is impossible at ``now``, or None."""
    latest = now + MAX_CLOCK_AHEAD
    if MIN_COMPUTED_AT <= computed_at <= latest:
        return None
    return (
        f"computed_at: {computed_at.isoformat()} is not a time the processor stamps "
        f"(between {MIN_COMPUTED_AT.date()} and the sink's clock + {MAX_CLOCK_AHEAD}, "
        f"{latest.isoformat()})"
    )

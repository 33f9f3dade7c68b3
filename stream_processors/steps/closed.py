"""Closed trajectories: what the join keeps of a trajectory after its idle close, so that it
can be resumed correctly.

A trajectory not updated for the idle timeout is forgotten as a *live* trajectory, but its
key in the ``trajectories`` table keeps a closed record for the retention period
(``METERLINE_TRAJECTORY_RETENTION_S``), so that a later event or trajectory record of the
same trace (a human-in-the-loop pause longer than the idle timeout):

- joins with the trajectory's user, anonymous id, agent and trajectory id;
- reopens it: a trajectory record merges into the trajectory as it was *before* the close
  (not into the synthetic ``timed_out`` close), at a version above the close's, so
  ClickHouse's ``ReplacingMergeTree(version)`` keeps the real final status and ``ended_at``.

Layout (one value per ``project␟trace_id``, the same key as the live trajectory, so it is in
the same changelog and survives restarts and rebalances like any table value)::

    {"version": the last version emitted (the close's, if it was closed timed_out),
     "trajectory": the merged trajectory before the close, JSON form (see below),
     "p": source partition, "seen": its last update, "closed": when it was closed,
     "timed_out": the ended_at the close gave it (only if it was closed timed_out)}

Bound: one record per trajectory closed within the retention; its metadata is kept only up
to :data:`CLOSED_METADATA_MAX_BYTES` (encoded), so each record stays under ~5 KB of JSON. A
trajectory resumed after its metadata was dropped carries only the metadata sent after the
reopen. Past the retention the record is deleted (a tombstone) and the trace is unknown
again: a later record starts over at version 1 and loses to the stored close.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from meterline.schemas import TrajectoryRecord, TrajectoryState, TrajectoryStatus

DEFAULT_RETENTION_S = 7 * 86_400.0
#: Metadata of a closed trajectory above this size (encoded JSON) is not kept.
CLOSED_METADATA_MAX_BYTES = 4_096


def is_closed(stored: Any) -> bool:
    """Whether a ``trajectories`` table value is a closed record (else a live trajectory)."""
    return stored.get("closed") is not None


def closed_record(
    stored: dict[str, Any], version: int, now: float, timed_out: str | None
) -> tuple[dict[str, Any], bool]:
    """The closed record of the live value ``stored``, closed at ``now`` with its last
    emitted ``version`` (``timed_out``: the ``ended_at`` its timed-out close gave it, JSON
    form). Returns the record and whether its metadata was dropped (over the bound)."""
    trajectory = dict(stored["trajectory"])
    metadata = trajectory.get("metadata") or {}
    dropped = bool(metadata) and len(orjson.dumps(metadata)) > CLOSED_METADATA_MAX_BYTES
    if dropped:
        trajectory["metadata"] = {}
    record: dict[str, Any] = {
        "version": version,
        "trajectory": trajectory,
        "p": stored.get("p", 0),
        "seen": stored.get("seen", now),
        "closed": now,
    }
    if timed_out is not None:
        record["timed_out"] = timed_out
    return record, dropped


def timed_out_state(stored: dict[str, Any], now: float) -> TrajectoryState | None:
    """The closing state of the idle live value ``stored`` if its trajectory never ended
    (status ``timed_out``, ``ended_at`` its last update, the next version); None if it
    ended."""
    record = TrajectoryRecord.model_validate(stored["trajectory"])
    if record.status is not TrajectoryStatus.RUNNING:
        return None
    ended = datetime.fromtimestamp(float(stored.get("seen") or now), UTC)
    record = record.model_copy(
        update={"status": TrajectoryStatus.TIMED_OUT, "ended_at": record.ended_at or ended}
    )
    return TrajectoryState(trajectory=record, version=int(stored["version"]) + 1)


def reopen_base(stored: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """What a trajectory record reopening the closed record ``stored`` merges into: the last
    version emitted (a reopen goes above it) and the trajectory as it was before the close
    (JSON form, read through the model: a record stored by an older version gets today's
    form)."""
    before = TrajectoryRecord.model_validate(stored["trajectory"])
    return int(stored["version"]), before.model_dump(mode="json")


def as_emitted(stored: dict[str, Any]) -> dict[str, Any]:
    """The trajectory (JSON form) of a table value as ClickHouse last received it: for a
    trajectory closed timed_out, with that status and the close's ``ended_at``."""
    trajectory: dict[str, Any] = stored["trajectory"]
    timed_out = stored.get("timed_out")
    if timed_out is None or not is_closed(stored):
        return trajectory
    return {
        **trajectory,
        "status": TrajectoryStatus.TIMED_OUT.value,
        "ended_at": trajectory.get("ended_at") or timed_out,
    }


def expired(stored: dict[str, Any], now: float, retention_s: float) -> bool:
    """Whether a closed record is past the retention (counted from its close)."""
    return float(stored["closed"]) <= now - retention_s

"""Join step: attach events to their trajectory (one agent run) by trace_id.

State, keyed by ``project␟trace_id``, each value remembering its source partition ``p``:
- ``trajectories``: the merged trajectory record (JSON dict), its version, and when it was
  last updated (``seen``, processing time);
- ``pending``: events seen before their trajectory, at most ``max_pending_per_trace`` per
  trace, each with when it was parked and whether it already went out unjoined.

Rules (times are processing time, seconds):
- An event whose trajectory is known goes out joined (version 2), with the trajectory as
  it is at that moment: updates (end, status) apply to later events.
- An event that arrives first waits in ``pending`` up to ``grace_s``. If its trajectory
  arrives in time it goes out once, joined. Otherwise :meth:`sweep_pending` sends it out
  unjoined (version 1) and it keeps waiting; when the trajectory arrives it is re-emitted
  joined (version 2), which ClickHouse keeps over version 1. ``grace_s=0``: out at once.
- Events without a trace_id pass through unjoined (counted in ``no_trace``).
- :meth:`sweep_idle` forgets a trajectory not updated for ``idle_timeout_s``; one that never
  ended is first closed (status ``timed_out``, ``ended_at`` = its last update) and that state
  is emitted. Events still parked that long are forgotten too (they already went out
  unjoined). A later event for a forgotten trace is treated as early again.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter

from schemas import (
    VERSION_JOINED,
    VERSION_UNJOINED,
    ActionEvent,
    EnrichedEvent,
    Event,
    TelemetryEvent,
    TrajectoryRecord,
    TrajectoryState,
    TrajectoryStatus,
)
from stream_processors.steps.dedupe import SEP

_EVENT: TypeAdapter[Event] = TypeAdapter(ActionEvent | TelemetryEvent)
DEFAULT_MAX_PENDING_PER_TRACE = 10_000
DEFAULT_GRACE_S = 0.0
DEFAULT_IDLE_TIMEOUT_S = 3_600.0
_CACHE_SIZE = 50_000

State = MutableMapping[str, Any]


def trace_key(project: str, trace_id: str) -> str:
    return f"{project}{SEP}{trace_id}"


def merge(old: TrajectoryRecord | None, new: TrajectoryRecord) -> TrajectoryRecord:
    """Later non-null fields win; the earliest start and the union of metadata are kept."""
    if old is None:
        return new
    updates = {k: v for k, v in new.model_dump(exclude_unset=True).items() if v is not None}
    merged = old.model_copy(update=updates)
    starts = [s for s in (old.started_at, new.started_at) if s is not None]
    return merged.model_copy(
        update={
            "started_at": min(starts) if starts else None,
            "metadata": {**old.metadata, **new.metadata},
        }
    )


def _put(state: State, key: str, value: Any, partition: int) -> None:
    """Write with an explicit partition where the mapping supports it (``WriteBack``)."""
    put = getattr(state, "put", None)
    if put is not None:
        put(key, value, partition)
    else:
        state[key] = value


def _delete(state: State, key: str, partition: int) -> None:
    remove = getattr(state, "remove", None)
    if remove is not None:
        remove(key, partition)
    else:
        del state[key]


class TrajectoryJoiner:
    def __init__(
        self,
        trajectories: State,
        pending: State,
        *,
        max_pending_per_trace: int = DEFAULT_MAX_PENDING_PER_TRACE,
        grace_s: float = DEFAULT_GRACE_S,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
    ) -> None:
        self._trajectories = trajectories
        self._pending = pending
        self._max_pending = max_pending_per_trace
        self.grace_s = grace_s
        self.idle_timeout_s = idle_timeout_s
        self._cache: dict[str, tuple[int, TrajectoryRecord, bytes]] = {}
        self.joined = self.unjoined = self.late_joined = self.pending_overflow = 0
        self.no_trace = self.held = self.grace_expired = self.timed_out = self.forgotten = 0

    # -- lookups ------------------------------------------------------------------------

    def trajectory_for(self, project: str, trace_id: str) -> TrajectoryRecord | None:
        found = self._lookup(trace_key(project, trace_id))
        return found[1] if found is not None else None

    def _lookup(self, key: str) -> tuple[int, TrajectoryRecord, bytes] | None:
        """(version, record, record JSON) of a known trajectory, parsed once per version."""
        stored = self._trajectories.get(key)
        if stored is None:
            return None
        version = int(stored["version"])
        cached = self._cache.get(key)
        if cached is not None and cached[0] == version:
            return cached
        return self._remember(key, version, TrajectoryRecord.model_validate(stored["trajectory"]))

    def _remember(
        self, key: str, version: int, record: TrajectoryRecord
    ) -> tuple[int, TrajectoryRecord, bytes]:
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()  # a parse cache only; the table is the state
        entry = self._cache[key] = (version, record, record.model_dump_json().encode())
        return entry

    # -- events -------------------------------------------------------------------------

    def join_encoded(
        self, event: Event, partition: int = 0, now: float = 0.0
    ) -> tuple[bytes | None, int] | None:
        """The hot path: the trajectory's JSON (None: unjoined) and the output version, or
        None when the event is held in ``pending`` for the grace period (nothing to emit)."""
        if event.trace_id is None:
            self.unjoined += 1
            self.no_trace += 1
            return None, VERSION_UNJOINED
        found = self._lookup(trace_key(event.project, event.trace_id))
        if found is not None:
            self.joined += 1
            return found[2], VERSION_JOINED
        if self._park(event, partition, now, emitted=self.grace_s <= 0):
            self.held += 1
            return None
        self.unjoined += 1
        return None, VERSION_UNJOINED

    def join(self, event: Event, partition: int = 0, now: float = 0.0) -> EnrichedEvent | None:
        """Enrich one (deduplicated) event; None while it is held for the grace period."""
        out = self.join_encoded(event, partition, now)
        if out is None:
            return None
        if out[0] is None:
            return EnrichedEvent(event=event, version=out[1])
        assert event.trace_id is not None
        trajectory = self.trajectory_for(event.project, event.trace_id)
        return EnrichedEvent(event=event, trajectory=trajectory, version=out[1])

    def _park(self, event: Event, partition: int, now: float, *, emitted: bool) -> bool:
        """Park an early event; True if it is held (not emitted yet). An event over the
        per-trace cap is not parked: it goes out unjoined now and stays unjoined."""
        assert event.trace_id is not None
        key = trace_key(event.project, event.trace_id)
        entry = self._pending.get(key) or {"p": partition, "events": []}
        waiting = list(entry["events"])
        if len(waiting) >= self._max_pending:
            self.pending_overflow += 1  # stays unjoined in ClickHouse; counted
            return False
        waiting.append({"e": event.model_dump(mode="json"), "t": now, "x": emitted})
        _put(self._pending, key, {"p": partition, "events": waiting}, partition)
        return not emitted

    # -- trajectories -------------------------------------------------------------------

    def apply_trajectory(
        self, record: TrajectoryRecord, partition: int = 0, now: float = 0.0
    ) -> tuple[TrajectoryState, list[EnrichedEvent]]:
        """Merge a trajectory record; return its new state and the late-joined events."""
        key = trace_key(record.project, record.trace_id)
        stored = self._trajectories.get(key)
        old = self.trajectory_for(record.project, record.trace_id) if stored else None
        merged = merge(old, record)
        version = (int(stored["version"]) if stored else 0) + 1
        value = {"version": version, "trajectory": merged.model_dump(mode="json"),
                 "p": partition, "seen": now}
        _put(self._trajectories, key, value, partition)
        self._remember(key, version, merged)
        late: list[EnrichedEvent] = []
        if key in self._pending:
            entry = self._pending[key]
            _delete(self._pending, key, int(entry.get("p", partition)))
            late = [
                EnrichedEvent(
                    event=_EVENT.validate_python(e["e"]), trajectory=merged, version=VERSION_JOINED
                )
                for e in entry["events"]
            ]
            # held events go out for the first time (joined); the others are re-emitted
            sent_before = sum(1 for e in entry["events"] if e["x"])
            self.joined += len(late) - sent_before
            self.late_joined += sent_before
        return TrajectoryState(trajectory=merged, version=version), late

    # -- timers -------------------------------------------------------------------------

    def sweep_pending(self, now: float, partitions: Iterable[int] | None = None) -> list[
        EnrichedEvent
    ]:
        """Events held longer than ``grace_s``: marked sent and returned, unjoined."""
        owned = None if partitions is None else set(partitions)
        out: list[EnrichedEvent] = []
        for key in list(self._pending):
            entry = self._pending.get(key)
            if entry is None or (owned is not None and entry["p"] not in owned):
                continue
            events = entry["events"]
            due = {i for i, e in enumerate(events) if not e["x"] and now - e["t"] >= self.grace_s}
            if not due:
                continue
            for i in sorted(due):
                out.append(
                    EnrichedEvent(
                        event=_EVENT.validate_python(events[i]["e"]), version=VERSION_UNJOINED
                    )
                )
            updated = [{**e, "x": True} if i in due else e for i, e in enumerate(events)]
            _put(self._pending, key, {"p": entry["p"], "events": updated}, entry["p"])
        self.grace_expired += len(out)
        self.unjoined += len(out)
        return out

    def sweep_idle(
        self, now: float, partitions: Iterable[int] | None = None
    ) -> list[TrajectoryState]:
        """Forget trajectories (and parked events) idle for ``idle_timeout_s``; return the
        closing states of those that never ended."""
        owned = None if partitions is None else set(partitions)
        limit = now - self.idle_timeout_s
        closed: list[TrajectoryState] = []
        for key in list(self._trajectories):
            stored = self._trajectories.get(key)
            if stored is None or stored.get("seen", now) > limit:
                continue
            p = int(stored.get("p", 0))
            if owned is not None and p not in owned:
                continue
            record = TrajectoryRecord.model_validate(stored["trajectory"])
            if record.status is TrajectoryStatus.RUNNING:
                ended = datetime.fromtimestamp(float(stored.get("seen") or now), UTC)
                record = record.model_copy(
                    update={"status": TrajectoryStatus.TIMED_OUT,
                            "ended_at": record.ended_at or ended}
                )
                version = int(stored["version"]) + 1
                closed.append(TrajectoryState(trajectory=record, version=version))
                self.timed_out += 1
            _delete(self._trajectories, key, p)
            self._cache.pop(key, None)
            self.forgotten += 1
        for key in list(self._pending):
            entry = self._pending.get(key)
            if entry is None or (owned is not None and entry["p"] not in owned):
                continue
            if all(e["x"] and e["t"] <= limit for e in entry["events"]):
                _delete(self._pending, key, int(entry["p"]))
        return closed

"""Join step: attach events to their trajectory (one agent run) by trace_id.

State, keyed by ``project␟trace_id``:
- ``trajectories``: the merged trajectory record (JSON dict) and its version;
- ``pending``: events seen before their trajectory (JSON dicts), at most
  ``max_pending_per_trace`` per trace.

An event whose trajectory is known goes out joined. An event that arrives first goes out
at once, unjoined (version 1), and waits in ``pending``; when the trajectory arrives, every
pending event is re-emitted joined (version 2), which ClickHouse keeps over version 1.
Nothing waits on a timer, so nothing is lost if the trajectory never comes.
"""

from __future__ import annotations

from collections.abc import MutableMapping
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
)
from stream_processors.steps.dedupe import SEP

_EVENT: TypeAdapter[Event] = TypeAdapter(ActionEvent | TelemetryEvent)
DEFAULT_MAX_PENDING_PER_TRACE = 10_000
_CACHE_SIZE = 50_000


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


class TrajectoryJoiner:
    def __init__(
        self,
        trajectories: MutableMapping[str, dict[str, Any]],
        pending: MutableMapping[str, list[dict[str, Any]]],
        *,
        max_pending_per_trace: int = DEFAULT_MAX_PENDING_PER_TRACE,
    ) -> None:
        self._trajectories = trajectories
        self._pending = pending
        self._max_pending = max_pending_per_trace
        self._cache: dict[str, tuple[int, TrajectoryRecord, bytes]] = {}
        self.joined = self.unjoined = self.late_joined = self.pending_overflow = 0

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

    def join_encoded(self, event: Event) -> tuple[bytes | None, int]:
        """Like :meth:`join`, for the hot path: the trajectory's JSON (None: unjoined) and
        the output version, without building the enriched model."""
        if event.trace_id is None:
            self.unjoined += 1
            return None, VERSION_UNJOINED
        found = self._lookup(trace_key(event.project, event.trace_id))
        if found is not None:
            self.joined += 1
            return found[2], VERSION_JOINED
        self.unjoined += 1
        self._park(event)
        return None, VERSION_UNJOINED

    def join(self, event: Event) -> EnrichedEvent:
        """Enrich one (deduplicated) event; an early event is also parked in ``pending``."""
        if event.trace_id is None:
            self.unjoined += 1
            return EnrichedEvent(event=event, version=VERSION_UNJOINED)
        trajectory = self.trajectory_for(event.project, event.trace_id)
        if trajectory is not None:
            self.joined += 1
            return EnrichedEvent(event=event, trajectory=trajectory, version=VERSION_JOINED)
        self.unjoined += 1
        self._park(event)
        return EnrichedEvent(event=event, version=VERSION_UNJOINED)

    def _park(self, event: Event) -> None:
        assert event.trace_id is not None
        key = trace_key(event.project, event.trace_id)
        waiting = list(self._pending.get(key) or [])
        if len(waiting) >= self._max_pending:
            self.pending_overflow += 1  # stays unjoined in ClickHouse; counted
            return
        waiting.append(event.model_dump(mode="json"))
        self._pending[key] = waiting

    def apply_trajectory(
        self, record: TrajectoryRecord
    ) -> tuple[TrajectoryState, list[EnrichedEvent]]:
        """Merge a trajectory record; return its new state and the late-joined events."""
        key = trace_key(record.project, record.trace_id)
        stored = self._trajectories.get(key)
        old = self.trajectory_for(record.project, record.trace_id) if stored else None
        merged = merge(old, record)
        version = (int(stored["version"]) if stored else 0) + 1
        self._trajectories[key] = {"version": version, "trajectory": merged.model_dump(mode="json")}
        self._remember(key, version, merged)
        released = self._pending.pop(key) if key in self._pending else []
        late = [
            EnrichedEvent(
                event=_EVENT.validate_python(e), trajectory=merged, version=VERSION_JOINED
            )
            for e in released
        ]
        self.late_joined += len(late)
        return TrajectoryState(trajectory=merged, version=version), late

"""Join step: attach events to their trajectory (one agent run) by trace_id.

State, keyed by ``project␟trace_id``, each value remembering its source partition ``p``:
- ``trajectories``: the merged trajectory record (JSON dict), its version, and when it was
  last updated (``seen``, processing time);
- ``pending``: events seen before their trajectory (parked), at most
  ``max_pending_per_trace`` per trace, each with when it was parked and whether it already
  went out unjoined: one record per event plus a small index per trace, so no record grows
  with a hot trace and parking costs O(1) (layout in
  :mod:`meterline.stream_processors.steps.parked`).

Rules (times are processing time, seconds):
- An event whose trajectory is known goes out joined (version 2), with the trajectory as
  it is at that moment: updates (end, status) apply to later events.
- An event that arrives first waits in ``pending`` up to ``grace_s``. If its trajectory
  arrives in time it goes out once, joined. Otherwise :meth:`sweep_pending_encoded` sends it
  out unjoined (version 1) and it keeps waiting; when the trajectory arrives it is re-emitted
  joined (version 2), which ClickHouse keeps over version 1. ``grace_s=0``: out at once.
  An event over the per-trace limit, or too large to park in one Kafka message, is not
  parked: it goes out unjoined at once and stays unjoined (counted in ``pending_overflow``).
- Events without a trace_id pass through unjoined (counted in ``no_trace``).
- :meth:`sweep_idle` closes a trajectory not updated for ``idle_timeout_s``; one that never
  ended is first closed (status ``timed_out``, ``ended_at`` = its last update) and that state
  is emitted. Its value becomes a closed record
  (:mod:`meterline.stream_processors.steps.closed`) kept ``retention_s`` after the close: a
  later event joins with it, a later trajectory record reopens it (merged into the
  trajectory as it was before the close, at a version above the close's). Past the
  retention the record is deleted and a later event for the trace is treated as early again.
  Events still parked for ``idle_timeout_s`` are forgotten (they already went out unjoined).

Trajectory records merge on their JSON form, within bounds that keep each state record in
one Kafka message (:mod:`meterline.stream_processors.steps.merge`); ``metadata_truncated``
counts the records that lost metadata keys to them. Every event goes out with its JSON, for
the one encoder of enriched events (:mod:`meterline.stream_processors.steps.enriched`).

After a restart or rebalance the tables hold the state; :meth:`TrajectoryJoiner.recover`
rebuilds what the timers keep in memory from them.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any, NamedTuple

import orjson

from meterline.schemas import (
    VERSION_JOINED,
    VERSION_UNJOINED,
    EnrichedEvent,
    TrajectoryRecord,
    TrajectoryState,
)
from meterline.schemas.codec import encode_state
from meterline.schemas.fast_decode import AnyEvent, AnyTrajectory, to_model
from meterline.stream_processors.sizes import StateBounds
from meterline.stream_processors.steps.closed import (
    DEFAULT_RETENTION_S,
    as_emitted,
    closed_record,
    expired,
    is_closed,
    reopen_base,
    timed_out_state,
)
from meterline.stream_processors.steps.dedupe import SEP
from meterline.stream_processors.steps.enriched import event_json as json_of
from meterline.stream_processors.steps.merge import DEFAULT_BOUNDS, merge_json
from meterline.stream_processors.steps.parked import ParkedEvents, delete, put

DEFAULT_MAX_PENDING_PER_TRACE = 10_000
DEFAULT_GRACE_S = 0.0
DEFAULT_IDLE_TIMEOUT_S = 3_600.0
_CACHE_SIZE = 50_000

State = MutableMapping[str, Any]


class Applied(NamedTuple):
    """A trajectory record applied: the merged trajectory (JSON form) and its wire JSON, the
    state's version and wire JSON, and the late-joined events with their JSON."""

    trajectory: dict[str, Any]
    trajectory_json: bytes
    version: int
    state_json: bytes
    late: list[tuple[AnyEvent, bytes]]

    @property
    def state(self) -> TrajectoryState:
        """The new state as a model (built on each access: the hot path does not need it)."""
        record = TrajectoryRecord.model_validate(self.trajectory)
        return TrajectoryState(trajectory=record, version=self.version)


def trace_key(project: str, trace_id: str) -> str:
    return f"{project}{SEP}{trace_id}"


class TrajectoryJoiner:
    def __init__(
        self,
        trajectories: State,
        pending: State,
        *,
        max_pending_per_trace: int = DEFAULT_MAX_PENDING_PER_TRACE,
        grace_s: float = DEFAULT_GRACE_S,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
        retention_s: float = DEFAULT_RETENTION_S,
        bounds: StateBounds = DEFAULT_BOUNDS,
    ) -> None:
        self._trajectories = trajectories
        self.bounds = bounds
        self._parked = ParkedEvents(
            pending, max_per_trace=max_pending_per_trace, max_record_bytes=bounds.parked_bytes
        )
        self.grace_s = grace_s
        self.idle_timeout_s = idle_timeout_s
        self.retention_s = retention_s
        #: per trace: (version, the trajectory's JSON form, its wire JSON), parsed once
        self._cache: dict[str, tuple[int, dict[str, Any], bytes]] = {}
        #: per trace: (version, model), for :meth:`trajectory_for` (the rule stage)
        self._models: dict[str, tuple[int, TrajectoryRecord]] = {}
        #: while a batch is open: early events per trace, in arrival order, not parked yet
        self._staged: dict[str, list[tuple[AnyEvent, int, float, bytes | None]]] | None = None
        self.joined = self.unjoined = self.late_joined = self.pending_overflow = 0
        self.no_trace = self.held = self.grace_expired = self.timed_out = self.forgotten = 0
        #: trajectory records that reopened a closed trajectory; closed records deleted past
        #: the retention; closed records whose metadata was over the bound (not kept)
        self.reopened = self.expired = self.metadata_dropped = 0
        self.metadata_truncated = 0  # trajectory records whose metadata lost keys (bounds)

    # -- lookups ------------------------------------------------------------------------

    def trajectory_for(self, project: str, trace_id: str) -> TrajectoryRecord | None:
        key = trace_key(project, trace_id)
        found = self._lookup(key)
        if found is None:
            return None
        model = self._models.get(key)
        if model is None or model[0] != found[0]:
            if len(self._models) >= _CACHE_SIZE:
                self._models.clear()
            model = self._models[key] = (found[0], TrajectoryRecord.model_validate(found[1]))
        return model[1]

    def _lookup(self, key: str) -> tuple[int, dict[str, Any], bytes] | None:
        """(version, JSON form, wire JSON) of a known trajectory, parsed once per version."""
        stored = self._trajectories.get(key)
        return None if stored is None else self._parsed(key, stored)

    def _parsed(self, key: str, stored: Any) -> tuple[int, dict[str, Any], bytes]:
        version = int(stored["version"])
        cached = self._cache.get(key)
        if cached is not None and cached[0] == version:
            return cached
        # read through the model once: a record stored by an older version gets today's form
        record = TrajectoryRecord.model_validate(as_emitted(stored))
        return self._remember(key, version, record.model_dump(mode="json"),
                              record.model_dump_json().encode())  # fmt: skip

    def _remember(
        self, key: str, version: int, trajectory: dict[str, Any], trajectory_json: bytes
    ) -> tuple[int, dict[str, Any], bytes]:
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()  # a parse cache only; the table is the state
        entry = self._cache[key] = (version, trajectory, trajectory_json)
        return entry

    # -- events -------------------------------------------------------------------------

    def join_encoded(
        self, event: AnyEvent, partition: int = 0, now: float = 0.0,
        event_json: bytes | None = None,
    ) -> tuple[bytes | None, int] | None:
        """The hot path: the trajectory's JSON (None: unjoined) and the output version, or
        None when the event is held in ``pending`` for the grace period (nothing to emit).
        ``event_json``: the event's JSON, kept with it if it is parked."""
        if event.trace_id is None:
            self.unjoined += 1
            self.no_trace += 1
            return None, VERSION_UNJOINED
        key = trace_key(event.project, event.trace_id)
        found = self._lookup(key)
        if found is not None:
            self.joined += 1
            return found[2], VERSION_JOINED
        if self._staged is not None and self.grace_s > 0:
            self._staged.setdefault(key, []).append((event, partition, now, event_json))
            return None
        if self._park(event, partition, now, emitted=self.grace_s <= 0, event_json=event_json):
            self.held += 1
            return None
        self.unjoined += 1
        return None, VERSION_UNJOINED

    def retract(self, version: int) -> None:
        """Undo the count of a :meth:`join_encoded` whose output was not produced (too large:
        dead-lettered instead)."""
        if version == VERSION_JOINED:
            self.joined -= 1
        else:
            self.unjoined -= 1

    # -- batches ------------------------------------------------------------------------

    def open_batch(self) -> None:
        """Until :meth:`close_batch`, early events are staged in memory instead of parked:
        one whose trajectory comes later in the same batch goes out joined when it does,
        exactly as a parked one would be released, without writing the parked record and
        its tombstone. (With SDK-framed traffic most early events are early only by the
        order of topics within a batch.)"""
        self._staged = {}

    def close_batch(self) -> list[tuple[AnyEvent, bytes]]:
        """Park the staged events still waiting for their trajectory, in arrival order.
        Returns those that could not be parked (over the per-trace cap, too large) with
        their JSON: they go out unjoined now, as :meth:`join_encoded` would have said."""
        staged, self._staged = self._staged or {}, None
        overflow: list[tuple[AnyEvent, bytes]] = []
        for events in staged.values():
            for event, partition, now, event_json in events:
                if self._park(event, partition, now, emitted=False, event_json=event_json):
                    self.held += 1
                else:
                    self.unjoined += 1
                    overflow.append((event, json_of(event, event_json)))
        return overflow

    def abandon_batch(self) -> None:
        """Drop what an interrupted batch staged (the batch is not acknowledged: it
        replays)."""
        self._staged = None

    def _park(
        self, event: AnyEvent, partition: int, now: float, *, emitted: bool,
        event_json: bytes | None = None,
    ) -> bool:  # fmt: skip
        """Park an early event; True if it is held (not emitted yet). An event over the
        per-trace cap, or too large to park, is not parked: it goes out unjoined now and
        stays unjoined."""
        assert event.trace_id is not None
        key = trace_key(event.project, event.trace_id)
        if not self._parked.park(key, event, partition, now, sent=emitted, event_json=event_json):
            self.pending_overflow += 1  # stays unjoined in ClickHouse; counted
            return False
        return not emitted

    # -- trajectories -------------------------------------------------------------------

    def apply_trajectory_encoded(
        self, record: AnyTrajectory, partition: int = 0, now: float = 0.0
    ) -> Applied:
        """Merge a trajectory record: the merged trajectory in its JSON form and serialised,
        its state, and the late-joined events (version :data:`VERSION_JOINED`) with their
        JSON, to encode without building or serialising models."""
        key = trace_key(record.project, record.trace_id)
        old = self._base(key)
        merged, dropped = merge_json(old[1] if old else None, record, self.bounds)
        if dropped:
            self.metadata_truncated += 1
        version = (old[0] if old else 0) + 1
        trajectory_json = orjson.dumps(merged)  # the table keeps the JSON form itself
        value = {"version": version, "trajectory": merged, "p": partition, "seen": now}
        put(self._trajectories, key, value, partition)
        self._remember(key, version, merged, trajectory_json)
        released = self._parked.release_encoded(key)
        # held events go out for the first time (joined); the others are re-emitted
        sent_before = sum(1 for _, _, sent in released if sent)
        self.joined += len(released) - sent_before
        self.late_joined += sent_before
        late: list[tuple[AnyEvent, bytes]] = [(e, e_json) for e, e_json, _ in released]
        staged = self._staged.pop(key, None) if self._staged is not None else None
        if staged:  # earlier in this batch, after those parked before: arrival order
            self.joined += len(staged)
            late.extend((event, json_of(event, event_json)) for event, _, _, event_json in staged)
        return Applied(
            merged, trajectory_json, version, encode_state(trajectory_json, version), late
        )

    def _base(self, key: str) -> tuple[int, dict[str, Any]] | None:
        """(version, JSON form) a trajectory record merges into: the live trajectory, or a
        closed one as it was before its close (its last version kept: a reopen wins)."""
        stored = self._trajectories.get(key)
        if not stored:
            return None
        if not is_closed(stored):
            found = self._parsed(key, stored)
            return found[0], found[1]
        self.reopened += 1
        return reopen_base(stored)

    # -- timers -------------------------------------------------------------------------

    def sweep_pending_encoded(
        self, now: float, partitions: Iterable[int] | None = None
    ) -> list[tuple[AnyEvent, bytes]]:
        """Events held longer than ``grace_s``: marked sent and returned with their JSON, to
        go out unjoined (version :data:`VERSION_UNJOINED`). Costs the events due, not the
        events parked; events of partitions not in ``partitions`` wait for the next
        :meth:`recover` (which follows every assignment)."""
        owned = None if partitions is None else set(partitions)
        out = self._parked.due(now, self.grace_s, owned)
        self.grace_expired += len(out)
        self.unjoined += len(out)
        return out

    def sweep_pending(
        self, now: float, partitions: Iterable[int] | None = None
    ) -> list[EnrichedEvent]:
        """:meth:`sweep_pending_encoded` as models, for ``pipeline.py``'s sweep until it
        sends the encoded pairs (then this goes; issue 23)."""
        return [
            EnrichedEvent(event=to_model(event), version=VERSION_UNJOINED)
            for event, _ in self.sweep_pending_encoded(now, partitions)
        ]

    def sweep_idle(
        self, now: float, partitions: Iterable[int] | None = None
    ) -> list[TrajectoryState]:
        """Close trajectories (and forget parked events) idle for ``idle_timeout_s``; return
        the closing states of those that never ended. Closed records past ``retention_s``
        are deleted. Costs one look per trajectory known (live or closed)."""
        owned = None if partitions is None else set(partitions)
        limit = now - self.idle_timeout_s
        closed: list[TrajectoryState] = []
        for key in list(self._trajectories):
            stored = self._trajectories.get(key)
            if stored is None:
                continue
            p = int(stored.get("p", 0))
            if owned is not None and p not in owned:
                continue
            if is_closed(stored):
                if expired(stored, now, self.retention_s):
                    delete(self._trajectories, key, p)
                    self.expired += 1
                continue
            if stored.get("seen", now) > limit:
                continue
            state = timed_out_state(stored, now)
            version, timed_out = int(stored["version"]), None
            if state is not None:
                self.timed_out += 1
                closed.append(state)
                version = state.version
                timed_out = state.trajectory.model_dump(mode="json")["ended_at"]
            record, dropped = closed_record(stored, version, now, timed_out)
            self.metadata_dropped += dropped
            put(self._trajectories, key, record, p)
            self._cache.pop(key, None)
            self._models.pop(key, None)
            self.forgotten += 1
        self._parked.forget_idle(limit, owned)
        return closed

    def recover(self) -> int:
        """Rebuild the in-memory timer state from the tables, after every table recovery
        (restart, rebalance). Returns the number of traces with parked events."""
        self._cache.clear()
        self._models.clear()
        return self._parked.recover()

"""The rule stage: outcomes of the trajectory rules, incrementally, as joined events arrive.

    observe(event) per joined event  ->  drain() once per batch  ->  outcomes to emit

Contract:

* State lives in the ``MutableMapping[str, dict]`` given to the constructor, one value per
  ``(project, trace_id)`` (key: ``project`` U+001F ``trace_id``). Values are JSON-ready
  dicts and are always written back whole (``state[key] = value``), so a Faust table
  (``value_serializer="json"``) records every change in its changelog. Only events that
  satisfy a step of some trajectory rule are kept, reduced to the fields rules read
  (:mod:`meterline.stream_processors.rules.slim`), at most ``max_events_per_trace`` per trajectory
  and ``max_state_bytes`` of slim events (JSON) per trajectory, so a value fits one Kafka
  message; an event past either is not kept and is counted in ``over_cap``.
* :meth:`drain` re-evaluates each trajectory touched since the last drain with
  :func:`~meterline.stream_processors.rules.outcomes.evaluate_trajectory` and returns the outcomes
  that are new or changed, plus retractions (``retracted=True``) of ids it emitted before
  that no longer hold. Applied in order (later ``computed_at`` wins), the emitted records
  give the same live outcomes as evaluating the whole trajectory at once, whatever the
  arrival order and however many duplicates.
* ``trajectories`` (optional): looks up the trajectory already known for an event that
  arrives without one, so a trajectory seen before the first relevant event still gives
  the outcomes their user (the stream passes the join's lookup).
* Not thread-safe; one stage per worker. ``user``-scope rules span trajectories and are not
  evaluated here (``meterline backfill`` and the recompute loop evaluate them).
* A trajectory's state is dropped ``end_grace_s`` after its end record was seen, or after
  ``idle_s`` without events; :meth:`drain` runs :meth:`expire` at most every
  ``expire_every_s`` (default: a quarter of the shorter of the two, at most 60 s). What is
  left is a marker (``{"x": when}``, a few dozen bytes) for ``forget_s``: a relevant event
  of a marked trajectory is not evaluated (alone it would replace the trajectory's outcomes
  with those of a part of it) but becomes an :class:`~meterline.schemas.OutcomeCorrection`
  (:meth:`corrections`), which the correction path answers by re-evaluating the whole
  trajectory from ClickHouse. The marker's clock restarts with each such event. Only an
  event arriving more than ``forget_s`` after the marker was left starts a fresh state.
* Bounds per trajectory: ``max_events_per_trace`` slim events (~0.2-1 KB each) while live;
  one marker for ``forget_s`` after.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from meterline.schemas.control_plane import ControlPlane, OutcomeRule
from meterline.schemas.derived import EnrichedEvent
from meterline.schemas.events import Event, TrajectoryRecord, TrajectoryStatus
from meterline.schemas.outcomes import Outcome, OutcomeCorrection
from meterline.stream_processors.rules.outcomes import SEP, evaluate_trajectory
from meterline.stream_processors.rules.slim import relevant, rule_paths, slim, unslim

State = MutableMapping[str, dict[str, Any]]
ConfigSource = ControlPlane | Callable[[], ControlPlane]
#: ``(project, trace_id) -> the trajectory known so far`` (the join's state), or None
Lookup = Callable[[str, str], TrajectoryRecord | None]


@dataclass
class StageStats:
    observed: int = 0
    kept: int = 0  # events stored (relevant to a rule)
    over_cap: int = 0  # relevant events not stored: the trajectory hit max_events_per_trace
    emitted: int = 0
    retracted: int = 0
    expired: int = 0
    corrections: int = 0  # relevant events of dropped trajectories, sent to be corrected
    forgotten: int = 0  # markers dropped after forget_s


def state_key(project: str, trace_id: str) -> str:
    return f"{project}{SEP}{trace_id}"


class RuleStage:
    def __init__(
        self,
        config: ConfigSource,
        state: State,
        *,
        max_events_per_trace: int = 1_000,
        max_state_bytes: int = 1_000_000,
        end_grace_s: float = 300.0,
        idle_s: float = 3_600.0,
        forget_s: float = 86_400.0,
        expire_every_s: float | None = None,
        clock: Callable[[], float] = time.time,
        trajectories: Lookup | None = None,
    ) -> None:
        self._source = config
        self._lookup = trajectories
        self.state = state
        self.max_events = max_events_per_trace
        self.max_bytes = max_state_bytes
        self.end_grace_s, self.idle_s, self.forget_s = end_grace_s, idle_s, forget_s
        if expire_every_s is None:
            expire_every_s = min(60.0, max(0.1, min(end_grace_s, idle_s) / 4))
        self.expire_every_s = expire_every_s
        self._corrections: dict[str, OutcomeCorrection] = {}
        self.clock = clock
        self.stats = StageStats()
        self._dirty: set[str] = set()
        self._last_expire = clock()
        self._use(self._current())

    def _current(self) -> ControlPlane:
        return self._source if isinstance(self._source, ControlPlane) else self._source()

    def _use(self, config: ControlPlane) -> None:
        self.config = config
        self._rules: tuple[OutcomeRule, ...] = tuple(
            r for r in config.outcome_rules if r.scope == "trajectory"
        )
        self._paths = rule_paths(self._rules)

    def observe(self, item: EnrichedEvent | Event) -> None:
        """Remember the event if a rule can use it. Never emits; call :meth:`drain`."""
        self.stats.observed += 1
        event = item.event if isinstance(item, EnrichedEvent) else item
        trajectory = item.trajectory if isinstance(item, EnrichedEvent) else None
        if event.trace_id is None:
            return
        key = state_key(event.project, event.trace_id)
        value = self.state.get(key)
        if value is not None and _dropped(value):
            if relevant(self._rules, event):
                self._correct(key, event)
            return
        if not relevant(self._rules, event):
            if value is not None and trajectory is not None:
                self._remember_trajectory(key, value, trajectory)
            return
        if value is None:
            value = _new(event.project, event.trace_id)
            if trajectory is None and self._lookup is not None:  # known before this event
                trajectory = self._lookup(event.project, event.trace_id)
        else:
            value = dict(value)
        events = dict(value["e"])
        kept = slim(event, self._paths)
        size = len(orjson.dumps(kept))
        held = value.get("b")
        if held is None:  # state written before the byte bound: measured once
            held = len(orjson.dumps(events))
        if event.event_id in events:  # a repeat: replaces its earlier form
            events[event.event_id] = kept
            self.stats.kept += 1
        elif len(events) < self.max_events and held + size <= self.max_bytes:
            events[event.event_id] = kept
            held += size
            self.stats.kept += 1
        else:
            self.stats.over_cap += 1
        value["e"], value["b"], value["seen"] = events, held, self.clock()
        if trajectory is not None:
            _apply_trajectory(value, trajectory, self.clock())
        self.state[key] = value
        self._dirty.add(key)

    def _correct(self, key: str, event: Event) -> None:
        assert event.trace_id is not None
        now = self.clock()
        self._corrections[key] = OutcomeCorrection(
            project=event.project, trace_id=event.trace_id, event_id=event.event_id,
            requested_at=datetime.fromtimestamp(now, UTC),
        )  # fmt: skip
        self.state[key] = {"x": now}  # the marker's clock restarts
        self.stats.corrections += 1

    def corrections(self) -> list[OutcomeCorrection]:
        """Correction requests since the last call (one per trajectory), in key order.
        Produce them only after the batch's events are acknowledged: the correction path
        waits for what was produced before a request to land, then re-evaluates."""
        found = [self._corrections[k] for k in sorted(self._corrections)]
        self._corrections.clear()
        return found

    def observe_trajectory(self, record: TrajectoryRecord) -> None:
        """Note a trajectory record: its user, and its end (starts the expiry grace)."""
        key = state_key(record.project, record.trace_id)
        value = self.state.get(key)
        if value is not None and not _dropped(value):
            self._remember_trajectory(key, value, record)

    def _remember_trajectory(self, key: str, value: dict[str, Any], t: TrajectoryRecord) -> None:
        before = (value.get("u"), value.get("a"), value.get("end"))
        value = dict(value)
        _apply_trajectory(value, t, self.clock())
        if (value.get("u"), value.get("a"), value.get("end")) != before:
            self.state[key] = value
            if (value.get("u"), value.get("a")) != before[:2]:
                self._dirty.add(key)

    def drain(self) -> list[Outcome]:
        """Outcomes new or changed since the last drain, and retractions, in key order."""
        self._use(self._current())
        now = self.clock()
        stamp = datetime.fromtimestamp(now, UTC)
        found: list[Outcome] = []
        for key in sorted(self._dirty):
            value = self.state.get(key)
            if value is not None and not _dropped(value):
                found += self._evaluate(key, value, stamp)
        self._dirty.clear()
        if now - self._last_expire >= self.expire_every_s:
            self.expire(now)
        return found

    def _evaluate(self, key: str, value: dict[str, Any], stamp: datetime) -> list[Outcome]:
        outcomes = evaluate_trajectory(self.config, _items(value))
        before: dict[str, list[Any]] = value.get("out", {})
        after: dict[str, list[Any]] = {}
        changed: list[Outcome] = []
        for o in outcomes:
            fp = _fingerprint(o)
            ts = o.timestamp.isoformat()
            after[o.outcome_id] = [fp, o.rule_id, o.rule_revision, o.rule_name, ts]
            if before.get(o.outcome_id, [None])[0] != fp:
                changed.append(o.model_copy(update={"computed_at": stamp}))
        for oid, (_, rule_id, revision, name, ts) in sorted(before.items()):
            if oid not in after:
                changed.append(self._retraction(value, oid, rule_id, revision, name, ts, stamp))
        self.stats.emitted += len(changed)
        self.stats.retracted += sum(o.retracted for o in changed)
        if after != before:
            self.state[key] = {**value, "out": after}
        return changed

    def _retraction(
        self, value: dict[str, Any], oid: str, rule_id: str, revision: int, name: str,
        ts: str, stamp: datetime,
    ) -> Outcome:  # fmt: skip
        return Outcome(
            outcome_id=oid, project=value["p"], rule_id=rule_id, rule_revision=revision,
            rule_name=name, config_version=self.config.version, trace_id=value["tr"],
            event_ids=(), value=0.0, timestamp=datetime.fromisoformat(ts), retracted=True,
            computed_at=stamp,
        )  # fmt: skip

    def expire(self, now: float | None = None) -> int:
        """Replace the state of ended (after the grace) and idle trajectories by a marker;
        drop markers older than ``forget_s``. Scans the state. Returns the states dropped."""
        now = self.clock() if now is None else now
        self._last_expire = now
        gone, forgotten = [], []
        for key, value in list(self.state.items()):
            if _dropped(value):
                if now - value["x"] >= self.forget_s:
                    forgotten.append(key)
            elif (
                value.get("end") is not None and now - value["end"] >= self.end_grace_s
            ) or now - value.get("seen", now) >= self.idle_s:
                gone.append(key)
        for key in gone:
            self.state[key] = {"x": now}
            self._dirty.discard(key)
        for key in forgotten:
            del self.state[key]
        self.stats.expired += len(gone)
        self.stats.forgotten += len(forgotten)
        return len(gone)


def _dropped(value: dict[str, Any]) -> bool:
    """A marker left by :meth:`RuleStage.expire`: the trajectory's state was dropped."""
    return "x" in value and "e" not in value


def _new(project: str, trace_id: str) -> dict[str, Any]:
    return {"p": project, "tr": trace_id, "e": {}, "u": None, "a": None, "end": None, "out": {}}


def _apply_trajectory(value: dict[str, Any], t: TrajectoryRecord, now: float) -> None:
    value["u"] = t.user_id or value.get("u")
    value["a"] = t.anonymous_id or value.get("a")
    if t.status is not TrajectoryStatus.RUNNING and value.get("end") is None:
        value["end"] = now


def _items(value: dict[str, Any]) -> list[EnrichedEvent | Event]:
    events: list[EnrichedEvent | Event] = [unslim(e) for e in value["e"].values()]
    if events and (value.get("u") or value.get("a")):
        first = events[0]
        assert not isinstance(first, EnrichedEvent)
        trajectory = TrajectoryRecord(
            project=value["p"], trace_id=value["tr"], user_id=value.get("u"),
            anonymous_id=value.get("a"),
        )  # fmt: skip
        events[0] = EnrichedEvent(event=first, trajectory=trajectory)
    return events


def _fingerprint(o: Outcome) -> str:
    parts = [o.value, list(o.event_ids), o.timestamp.isoformat(), o.user_id, o.anonymous_id,
             o.rule_name]  # fmt: skip
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]

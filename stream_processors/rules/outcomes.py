"""Outcomes from events: pure evaluation of the control plane's outcome rules.

Contract: the functions take events in any order (they sort by ``(timestamp, event_id)``)
and return outcomes sorted by ``(timestamp, rule id)``; same inputs, same outputs.

* ``scope: trajectory`` rules see the events of one ``(project, trace_id)``; events without
  a ``trace_id`` are ignored by them. Without ``repeat`` a rule yields at most one outcome
  per trajectory. Ids are ``(project, rule id, revision, trace_id, match index)``: the
  index is 0 without ``repeat``; with ``repeat`` every non-overlapping match is an outcome,
  numbered in time order. Ids stay the same when late events change which events matched,
  so ClickHouse replaces the row instead of adding one.
* ``scope: user`` rules see the events of one ``(project, user)`` across trajectories and
  always yield every non-overlapping match within ``within``; ids cover the event ids.
* The file ``version`` is not part of an id (editing another rule must not duplicate
  outcomes); the rule ``revision`` is.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence

from meterline.schemas.control_plane import ControlPlane, OutcomeRule
from meterline.schemas.derived import EnrichedEvent
from meterline.schemas.events import Event, TrajectoryRecord
from meterline.schemas.outcomes import Outcome
from meterline.stream_processors.rules.conditions import is_number, lookup
from meterline.stream_processors.rules.match import Match, find_matches

SEP = "\x1f"


def outcome_id(project: str, rule: OutcomeRule, scope_key: str, event_ids: Sequence[str]) -> str:
    """Deterministic id: 32 hex chars of sha256 over the parts, separated by U+001F.

    Trajectory rules pass ``(trace_id, [str(match index)])``; user rules pass
    ``("user" U+001F user, contributing event ids)``.
    """
    parts = [project, rule.id, str(rule.revision), scope_key, *sorted(event_ids)]
    return hashlib.sha256(SEP.join(parts).encode()).hexdigest()[:32]


def evaluate(config: ControlPlane, events: Iterable[EnrichedEvent | Event]) -> list[Outcome]:
    """Every rule of ``config`` over ``events``: trajectory rules and user rules."""
    items = list(events)
    found = evaluate_trajectory(config, items) + evaluate_user(config, items)
    return sorted(found, key=lambda o: (o.timestamp, o.rule_id, o.outcome_id))


def evaluate_trajectory(
    config: ControlPlane, events: Iterable[EnrichedEvent | Event]
) -> list[Outcome]:
    """Outcomes of the ``scope: trajectory`` rules, per ``(project, trace_id)``."""
    plain, trajectories = _unwrap(events)
    groups: dict[tuple[str, str], list[Event]] = defaultdict(list)
    for event in plain:
        if event.trace_id is not None:
            groups[(event.project, event.trace_id)].append(event)
    found: list[Outcome] = []
    for (project, trace_id), group in sorted(groups.items()):
        group.sort(key=_order)
        trajectory = trajectories.get((project, trace_id))
        for rule in config.outcome_rules:
            if rule.scope != "trajectory":
                continue
            for index, match in enumerate(find_matches(rule, group, rule.repeat)):
                oid = outcome_id(project, rule, trace_id, [str(index)])
                found.append(_outcome(config, rule, oid, group, match, trajectory))
    return sorted(found, key=lambda o: (o.timestamp, o.rule_id, o.outcome_id))


def evaluate_user(config: ControlPlane, events: Iterable[EnrichedEvent | Event]) -> list[Outcome]:
    """Outcomes of the ``scope: user`` rules, per ``(project, user_id or anonymous_id)``."""
    plain, _ = _unwrap(events)
    groups: dict[tuple[str, str], list[Event]] = defaultdict(list)
    for event in plain:
        user = event.user_id or event.anonymous_id
        if user is not None:
            groups[(event.project, user)].append(event)
    found: list[Outcome] = []
    for (project, user), group in sorted(groups.items()):
        group.sort(key=_order)
        for rule in config.outcome_rules:
            if rule.scope != "user":
                continue
            for match in find_matches(rule, group, repeat=True):
                ids = [e.event_id for e in _used(group, match)]
                oid = outcome_id(project, rule, f"user{SEP}{user}", ids)
                found.append(_outcome(config, rule, oid, group, match, None))
    return sorted(found, key=lambda o: (o.timestamp, o.rule_id, o.outcome_id))


def _order(event: Event) -> tuple[object, str]:
    return event.timestamp, event.event_id


def _unwrap(
    events: Iterable[EnrichedEvent | Event],
) -> tuple[list[Event], dict[tuple[str, str], TrajectoryRecord]]:
    """Inner events, deduplicated by (project, event_id), and the trajectories they carry."""
    plain: dict[tuple[str, str], Event] = {}
    trajectories: dict[tuple[str, str], TrajectoryRecord] = {}
    for item in events:
        event = item.event if isinstance(item, EnrichedEvent) else item
        plain[(event.project, event.event_id)] = event
        if isinstance(item, EnrichedEvent) and item.trajectory is not None:
            trajectories[(item.trajectory.project, item.trajectory.trace_id)] = item.trajectory
    return list(plain.values()), trajectories


def _used(events: Sequence[Event], match: Match) -> list[Event]:
    return [events[i] for i in sorted({i for picks in match for i in picks})]


def _outcome(
    config: ControlPlane,
    rule: OutcomeRule,
    oid: str,
    events: Sequence[Event],
    match: Match,
    trajectory: TrajectoryRecord | None,
) -> Outcome:
    used = _used(events, match)
    extra = [trajectory] if trajectory is not None else []
    return Outcome(
        outcome_id=oid,
        project=used[0].project,
        rule_id=rule.id,
        rule_revision=rule.revision,
        rule_name=rule.name,
        config_version=config.version,
        trace_id=used[0].trace_id,
        user_id=next((x.user_id for x in [*used, *extra] if x.user_id), None),
        anonymous_id=next((x.anonymous_id for x in [*used, *extra] if x.anonymous_id), None),
        event_ids=tuple(e.event_id for e in used),
        value=_value(rule, [events[i] for i in match[rule.value.step]]),
        timestamp=max(e.timestamp for e in used),
    )


def _value(rule: OutcomeRule, step_events: list[Event]) -> float:
    spec = rule.value
    if spec.constant is not None or spec.path is None:
        return spec.constant if spec.constant is not None else spec.default
    values = [lookup(e, spec.path) for e in step_events]
    numbers = [float(v) if is_number(v) else spec.default for v in values]  # type: ignore[arg-type]
    return numbers[0] if spec.agg == "first" else sum(numbers)

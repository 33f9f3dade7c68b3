"""The slim form of an event that the rule stage keeps in state: only what rules read.

Contract: for every trajectory rule ``r`` of the config the paths were taken from,
``find_matches(r, [unslim(slim(e, paths)) ...])`` equals ``find_matches(r, [e ...])``, and
outcome values, users and timestamps are the same. A slim event is a JSON-ready ``dict``
(strings, numbers, bools, lists, dicts), small enough for a Faust table value.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from meterline.schemas.control_plane import OutcomeRule
from meterline.schemas.events import ActionEvent, Event, TelemetryEvent
from meterline.stream_processors.rules.conditions import MISSING, lookup
from meterline.stream_processors.rules.match import step_matches

#: Fields every slim event keeps: identity, who, when, and what steps match on.
_BASE = frozenset(
    {"type", "event_id", "project", "trace_id", "user_id", "anonymous_id", "timestamp"}
)
_ACTION = frozenset({"kind", "name", "status", "model"})
_NESTED = ("properties", "metadata")


def rule_paths(rules: Iterable[OutcomeRule]) -> frozenset[str]:
    """Every field path the rules read: ``where`` conditions and value paths."""
    paths: set[str] = set()
    for rule in rules:
        for step in rule.steps:
            paths.update(c.field for c in step.where)
        if rule.value.path is not None:
            paths.add(rule.value.path)
    return frozenset(paths)


def relevant(rules: Iterable[OutcomeRule], event: Event) -> bool:
    """Whether the event satisfies at least one step of one rule (else no rule can use it)."""
    return any(step_matches(step, event) for rule in rules for step in rule.steps)


def slim(event: Event, paths: frozenset[str]) -> dict[str, Any]:
    """The event reduced to the base fields and ``paths`` (JSON types only)."""
    keep = set(_BASE) | ({"event_type"} if isinstance(event, TelemetryEvent) else set(_ACTION))
    roots = {path.partition(".")[0] for path in paths}
    keep |= roots
    data = event.model_dump(mode="json", include=keep & set(type(event).model_fields))
    for root in roots & set(_NESTED):
        if root in paths:  # the whole mapping is read
            continue
        pruned: dict[str, Any] = {}
        for path in paths:
            head, _, rest = path.partition(".")
            if head == root:
                _copy(data[root], rest, pruned)
        data[root] = pruned
    return data


def _copy(source: dict[str, Any], path: str, target: dict[str, Any]) -> None:
    """Copy the value at ``path`` (if any) into ``target`` under the same keys."""
    value = lookup(source, path)
    if value is MISSING:
        return
    *parents, last = path.split(".")
    for part in parents:
        child = target.get(part)
        if not isinstance(child, dict):
            child = target[part] = {}
        target = child
    target[last] = value


def unslim(data: dict[str, Any]) -> Event:
    """The event back from its slim form (validated: state from disk is not trusted)."""
    if data.get("type") == "telemetry":
        return TelemetryEvent.model_validate(data)
    return ActionEvent.model_validate(data)

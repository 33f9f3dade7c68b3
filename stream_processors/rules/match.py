"""Find the events that satisfy an outcome rule's steps, in time order.

Contract: ``events`` are sorted by ``(timestamp, event_id)``. A match is a list, per step,
of the indexes of the events it used; an event serves at most one step. Steps take the
earliest events that fit, in step order (greedy), so steps should not overlap.
``order: sequence`` needs every event of step k to come after every event of step k-1.
``within`` needs all contributing events inside one window starting at an event.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

from meterline.schemas.control_plane import OutcomeRule, Step
from meterline.schemas.events import Event, TelemetryEvent
from meterline.stream_processors.rules.conditions import all_hold

Match = list[list[int]]


def step_matches(step: Step, event: Event) -> bool:
    if isinstance(event, TelemetryEvent):
        if step.event_type is None or event.event_type != step.event_type:
            return False
    elif (
        step.event_type is not None
        or (step.action is not None and event.name != step.action)
        or (step.kind is not None and event.kind != step.kind)
        or (step.status is not None and event.status != step.status)
    ):
        return False
    return all_hold(step.where, event)


def find_matches(rule: OutcomeRule, events: Sequence[Event], repeat: bool) -> list[Match]:
    """Non-overlapping matches: one at most unless ``repeat``; used events are consumed."""
    hits = [[step_matches(step, e) for e in events] for step in rule.steps]
    alive = list(range(len(events)))
    found: list[Match] = []
    while True:
        match = _first_match(
            rule, [events[i] for i in alive], [[h[i] for i in alive] for h in hits]
        )
        if match is None:
            return found
        match = [[alive[i] for i in picks] for picks in match]
        found.append(match)
        used = {i for picks in match for i in picks}
        alive = [i for i in alive if i not in used]
        if not repeat:
            return found


def _first_match(
    rule: OutcomeRule, events: Sequence[Event], hits: list[list[bool]]
) -> Match | None:
    if rule.within is None:
        return _greedy(rule, hits, 0, len(events))
    times = [e.timestamp for e in events]
    for start in range(len(events)):
        end = bisect_right(times, times[start] + rule.within)
        match = _greedy(rule, hits, start, end)
        if match is not None:
            return match
    return None


def _greedy(rule: OutcomeRule, hits: list[list[bool]], start: int, end: int) -> Match | None:
    used: set[int] = set()
    match: Match = []
    for k, step in enumerate(rule.steps):
        picks: list[int] = []
        for i in range(start, end):
            if hits[k][i] and i not in used:
                picks.append(i)
                if len(picks) == step.count:
                    break
        if len(picks) < step.count:
            return None
        used.update(picks)
        match.append(picks)
        if rule.order == "sequence":
            start = picks[-1] + 1
    return match

"""Realistic synthetic agent traffic: users, trajectories, LLM and tool calls, telemetry.

Deterministic for a seed. Knows what it sent, so the demo and the tests can check the
numbers in ClickHouse against it.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from meterline.schemas import (
    ActionEvent,
    ActionKind,
    Event,
    RawRecord,
    Status,
    TelemetryEvent,
    TrajectoryRecord,
    TrajectoryStatus,
)

#: (provider, model, USD per 1M input tokens, USD per 1M output tokens) for demo costs.
MODELS = [
    ("openai", "gpt-4o-mini", 0.15, 0.60),
    ("openai", "gpt-4o", 2.50, 10.00),
    ("anthropic", "claude-3-5-haiku", 0.80, 4.00),
]
TOOLS = ["web_search", "database_search", "weather_lookup", "calculator_multiply"]
ACTIONS = ["object_detection", "data_extraction", "classification", "workflow_step"]
#: User attributes sent in ``identify`` telemetry (seat rules "assigned by role/department").
ROLES = ["admin", "analyst", "viewer", "viewer"]
DEPARTMENTS = ["finance", "ops", "sales"]


def attributes_of(user: str) -> dict[str, str]:
    """The fixed role and department of a demo user (``user_007`` -> index 7)."""
    i = int(user.rsplit("_", 1)[-1])
    return {"role": ROLES[i % len(ROLES)], "department": DEPARTMENTS[(i // 2) % len(DEPARTMENTS)]}


@dataclass
class Traffic:
    """Records in send order, plus what the pipeline should end up with."""

    project: str
    records: list[RawRecord] = field(default_factory=list)
    unique_events: dict[str, Event] = field(default_factory=dict)
    trajectories: dict[str, TrajectoryRecord] = field(default_factory=dict)
    duplicates_sent: int = 0
    early_events: int = 0

    @property
    def events_sent(self) -> int:
        return sum(1 for r in self.records if not isinstance(r, TrajectoryRecord))

    def kinds(self) -> Counter[str]:
        return Counter(
            e.kind.value if isinstance(e, ActionEvent) else "telemetry"
            for e in self.unique_events.values()
        )


def generate(
    *,
    project: str,
    events: int = 5_000,
    users: int = 8,
    duplicate_rate: float = 0.02,
    early_rate: float = 0.05,
    seed: int = 7,
) -> Traffic:
    """About ``events`` unique events in trajectories of 3-12 events each.

    ``early_rate`` of trajectories send some events before their start record;
    ``duplicate_rate`` of events are sent twice (same event_id, as a producer retry would).
    """
    rng = random.Random(seed)
    traffic = Traffic(project=project)
    user_ids = [f"user_{i:03d}" for i in range(users)]
    base = datetime(2026, 11, 1, tzinfo=UTC)
    t = 0
    while len(traffic.unique_events) < events:
        t += 1
        trace_id = uuid.UUID(int=rng.getrandbits(128)).hex
        user = rng.choice(user_ids)
        start = base + timedelta(seconds=t * 7)
        steps = _trajectory_events(rng, project, trace_id, user, start, rng.randint(3, 12))
        steps = steps[: events - len(traffic.unique_events)]
        start_rec = TrajectoryRecord(
            project=project,
            trace_id=trace_id,
            trajectory_id=f"traj-{t}",
            user_id=user,
            agent_id="demo-agent",
            status=TrajectoryStatus.RUNNING,
            started_at=start,
            timestamp=start,
        )
        end_rec = TrajectoryRecord(
            project=project,
            trace_id=trace_id,
            status=TrajectoryStatus.SUCCESS,
            ended_at=start + timedelta(seconds=6),
            timestamp=start + timedelta(seconds=6),
        )
        early = rng.random() < early_rate
        n_early = rng.randint(1, len(steps)) if early else 0
        traffic.early_events += n_early
        ordered: list[RawRecord] = [*steps[:n_early], start_rec, *steps[n_early:], end_rec]
        for rec in ordered:
            traffic.records.append(rec)
            if isinstance(rec, TrajectoryRecord):
                continue
            traffic.unique_events[rec.event_id] = rec
            if rng.random() < duplicate_rate:
                traffic.records.append(rec)
                traffic.duplicates_sent += 1
        traffic.trajectories[trace_id] = start_rec
    return traffic


def _trajectory_events(
    rng: random.Random, project: str, trace_id: str, user: str, start: datetime, n: int
) -> list[Event]:
    out: list[Event] = []
    for i in range(n):
        ts = start + timedelta(milliseconds=400 * i)
        common: dict[str, Any] = {
            "project": project,
            "event_id": uuid.UUID(int=rng.getrandbits(128)).hex,
            "trace_id": trace_id,
            "user_id": user,
            "timestamp": ts,
        }
        roll = rng.random()
        if roll < 0.45:
            provider, model, p_in, p_out = rng.choice(MODELS)
            tin, tout = rng.randint(200, 4000), rng.randint(20, 800)
            out.append(
                ActionEvent(
                    **common,
                    kind=ActionKind.LLM_CALL,
                    name="chat.completions",
                    model=model,
                    provider=provider,
                    input_tokens=tin,
                    output_tokens=tout,
                    cost_usd=round((tin * p_in + tout * p_out) / 1e6, 8),
                    duration_ms=rng.uniform(300, 4000),
                    started_at=ts,
                )
            )
        elif roll < 0.75:
            failed = rng.random() < 0.05
            out.append(
                ActionEvent(
                    **common,
                    kind=ActionKind.TOOL_CALL,
                    name=rng.choice(TOOLS),
                    status=Status.ERROR if failed else Status.SUCCESS,
                    error_message="upstream timeout" if failed else None,
                    duration_ms=rng.uniform(5, 900),
                    properties={"attempt": 1},
                )
            )
        elif roll < 0.92:
            out.append(_custom_action(rng, common))
        elif roll < 0.98:
            out.append(
                TelemetryEvent(
                    **common,
                    event_type="user.accept",
                    session_id=trace_id,
                    properties={"score": rng.randint(1, 5)},
                )
            )
        else:
            out.append(
                TelemetryEvent(**common, event_type="identify", properties=attributes_of(user))
            )
    return out


def _custom_action(rng: random.Random, common: dict[str, Any]) -> ActionEvent:
    """object_detection, data_extraction (amount, currency), classification or a
    workflow_step (final, tasks): what the example control plane's rules look at."""
    name = rng.choice(ACTIONS)
    props: dict[str, Any] = {}
    if name == "data_extraction":
        props = {
            "amount": rng.choice([120, 980.5, 1000, 4200]),
            "currency": rng.choice(["EUR", "USD", "GBP"]),
        }
    elif name == "workflow_step":
        props = {"final": rng.random() < 0.4, "tasks": rng.randint(1, 4)}
    failed = rng.random() < 0.1
    return ActionEvent(
        **common,
        kind=ActionKind.ACTION,
        name=name,
        status=Status.ERROR if failed else Status.SUCCESS,
        duration_ms=rng.uniform(10, 2000),
        properties=props,
    )

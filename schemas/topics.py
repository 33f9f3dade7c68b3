"""Kafka topic names. Producers, processors and sinks agree on them through this one type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Topics:
    """Topic names derived from one prefix (``meterline`` by default).

    Raw topics are written by producers and keyed by trace_id (else event_id); every raw
    topic must have the same partition count so a trajectory and its events meet in one
    stream-processor worker.
    """

    prefix: str = "meterline"

    def for_record(self, record: Any) -> str:
        """The raw topic a record is produced to (an ActionEvent, TelemetryEvent or
        TrajectoryRecord; TypeError for anything else)."""
        from meterline.schemas.events import ActionEvent, TelemetryEvent, TrajectoryRecord

        if isinstance(record, ActionEvent):
            return self.actions
        if isinstance(record, TelemetryEvent):
            return self.telemetry
        if isinstance(record, TrajectoryRecord):
            return self.trajectories
        raise TypeError(f"not a meterline raw record: {type(record).__name__}")

    @property
    def actions(self) -> str:
        return f"{self.prefix}.actions"

    @property
    def telemetry(self) -> str:
        return f"{self.prefix}.telemetry"

    @property
    def trajectories(self) -> str:
        return f"{self.prefix}.trajectories"

    @property
    def enriched(self) -> str:
        return f"{self.prefix}.enriched"

    @property
    def trajectory_state(self) -> str:
        return f"{self.prefix}.trajectory-state"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}.dead-letters"

    @property
    def outcomes(self) -> str:
        """Outcomes derived by the rule stage (``meterline.schemas.Outcome``), keyed by
        outcome_id."""
        return f"{self.prefix}.outcomes"

    @property
    def outcome_corrections(self) -> str:
        """Requests to re-evaluate a trajectory from ClickHouse
        (``meterline.schemas.OutcomeCorrection``),
        keyed by ``project`` U+001F ``trace_id``: the rule stage's late events."""
        return f"{self.prefix}.outcome-corrections"

    @property
    def raw(self) -> tuple[str, str, str]:
        return (self.actions, self.telemetry, self.trajectories)

    @property
    def sink_inputs(self) -> tuple[str, ...]:
        return (
            self.enriched, self.trajectory_state, self.dead_letters, self.outcomes,
            self.outcome_corrections,
        )  # fmt: skip

    @property
    def all(self) -> tuple[str, ...]:
        return self.raw + self.sink_inputs

"""Records derived by the control-plane rules: outcomes, user activity and seats."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field

from meterline.schemas.common import Id, JsonObject, Label, UtcDatetime, WireModel


class Outcome(WireModel):
    """One match of an outcome rule.

    ``outcome_id`` is deterministic (see
    :func:`meterline.stream_processors.rules.outcomes.outcome_id`):
    re-evaluating the same rule revision on the same data gives the same id, so ClickHouse
    (ReplacingMergeTree on ``(project, outcome_id)``) absorbs repeats. It includes the rule's
    ``revision`` but not the file ``version``: editing another rule does not duplicate
    outcomes; bumping this rule's revision does (on purpose: the definition changed).
    """

    type: Literal["outcome"] = "outcome"
    outcome_id: str
    project: Id
    rule_id: Id
    rule_revision: int
    rule_name: Label
    config_version: int
    trace_id: Id | None = None
    user_id: Id | None = None
    anonymous_id: Id | None = None
    event_ids: tuple[Id, ...]
    value: float
    timestamp: UtcDatetime  # of the last contributing event
    # True: an earlier emission of this id no longer holds (a late event changed the
    # matches, or the rule's revision changed); views drop retracted rows.
    retracted: bool = False
    # When the stream or a backfill computed this row; the ClickHouse version (later wins).
    # None in pure evaluation (same inputs, equal outputs); stamped by the stage/backfill.
    computed_at: UtcDatetime | None = None

    @property
    def user(self) -> str | None:
        """The user the outcome is attributed to: ``user_id``, else ``anonymous_id``."""
        return self.user_id or self.anonymous_id


class OutcomeCorrection(WireModel):
    """A request to re-evaluate one trajectory's outcomes from the events in ClickHouse.

    The rule stage emits it, instead of evaluating, for an event of a trajectory whose rule
    state it has already dropped (a late event): evaluating the event alone would replace
    the trajectory's outcomes with those of a part of it. The sink lands it in
    ``outcome_corrections``; the corrections round (``meterline corrections``, and the
    recompute loop of ``meterline up`` / ``meterline sink``) re-evaluates the whole
    trajectory, as ``meterline backfill`` does, once its events have landed.
    """

    type: Literal["outcome_correction"] = "outcome_correction"
    project: Id
    trace_id: Id
    event_id: Id  # the late event that caused the request (one of them)
    requested_at: UtcDatetime


class UserActivity(WireModel):
    """One action or telemetry event of a user, as seat rules see it."""

    type: Literal["user_activity"] = "user_activity"
    project: Id = "default"
    user: Id  # user_id, else anonymous_id
    timestamp: UtcDatetime
    name: Label  # the action name or the telemetry event_type
    source_type: Literal["action", "telemetry"] = "action"


class UserAttributes(WireModel):
    """What is known of a user (role, department, ...), from ``updated_at`` on."""

    type: Literal["user_attributes"] = "user_attributes"
    project: Id = "default"
    user: Id
    attributes: JsonObject = Field(default_factory=dict)
    updated_at: UtcDatetime


class SeatCount(WireModel):
    """Seats of one rule in one project and period, and which users hold them."""

    type: Literal["seat_count"] = "seat_count"
    project: Id
    rule_id: Id
    rule_name: Label
    period: Literal["day", "month"]
    period_start: date
    seats: int
    users: tuple[Id, ...]  # sorted

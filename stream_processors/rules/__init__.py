"""Pure evaluation of control-plane rules: outcomes from events, seats from user activity."""

from meterline.stream_processors.rules.outcomes import (
    evaluate,
    evaluate_trajectory,
    evaluate_user,
    outcome_id,
)
from meterline.stream_processors.rules.seats import activity_of, compute_seats, period_starts

__all__ = [
    "activity_of",
    "compute_seats",
    "evaluate",
    "evaluate_trajectory",
    "evaluate_user",
    "outcome_id",
    "period_starts",
]

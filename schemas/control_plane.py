"""The control-plane file: display names, outcome rules, seat rules and price overrides.

Data types only, no I/O (the YAML loader is
:mod:`meterline.stream_processors.control_plane.loader`).
Rules are data: field paths are dotted identifiers checked against a strict pattern, values
are JSON scalars, and nothing in the file is ever evaluated as code or spliced into SQL.
The format is documented in ``docs/control-plane.md``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveInt,
    StringConstraints,
    model_validator,
)

from meterline.schemas.common import UtcDatetime
from meterline.schemas.events import ActionKind, Status

#: A field path: dotted identifiers of ``[A-Za-z0-9_]`` (``properties.amount``).
FieldPath = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$", max_length=256)
]
#: A rule id: starts with a letter or digit, then ``[A-Za-z0-9_.-]``; stable across edits.
RuleId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=128)]
#: A human label (rule names, display names, action names to match).
Text = Annotated[str, StringConstraints(min_length=1, max_length=512)]
Scalar = bool | int | float | str | None
Op = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "contains", "exists"]

#: Top-level event attributes a condition may read; anything else must be under
#: ``properties.`` or ``metadata.``.
EVENT_ATTRIBUTES = frozenset(
    {
        "properties", "metadata", "name", "event_type", "kind", "status", "model", "provider",
        "duration_ms", "input_tokens", "output_tokens", "cached_tokens", "cost_usd",
        "error_type", "source", "agent_id", "session_id",
    }
)  # fmt: skip

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def _parse_duration(value: Any) -> Any:
    """``"30d"``, ``"12h"``, ``"15m"``, ``"45s"``, ``"2w"`` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '30d'")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if isinstance(value, str):
        found = _DURATION.match(value)
        if not found:
            raise ValueError(f"duration {value!r}: use <n>s, <n>m, <n>h, <n>d or <n>w")
        return timedelta(seconds=int(found.group(1)) * _UNIT_S[found.group(2)])
    return value


Duration = Annotated[timedelta, BeforeValidator(_parse_duration), Field(gt=timedelta(0))]


class ConfigModel(BaseModel):
    """Base of control-plane models: immutable, unknown keys rejected (typos fail loudly)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Condition(ConfigModel):
    """``field op value``. Missing fields never match, except ``exists: false``.

    Numbers compare with numbers and strings with strings; mixed types never match (no
    coercion). ``in`` takes a list; ``contains`` is a substring or a list member.
    """

    field: FieldPath
    op: Op = "eq"
    value: Scalar | list[Scalar] = None

    @model_validator(mode="after")
    def _check(self) -> Condition:
        if self.op == "in" and not isinstance(self.value, list):
            raise ValueError("op 'in' needs a list value")
        if self.op != "in" and isinstance(self.value, list):
            raise ValueError(f"op {self.op!r} needs a scalar value")
        if self.op == "exists" and not isinstance(self.value, bool | None):
            raise ValueError("op 'exists' takes true or false")
        ordered = isinstance(self.value, int | float | str) and not isinstance(self.value, bool)
        if self.op in ("gt", "gte", "lt", "lte") and not ordered:
            raise ValueError(f"op {self.op!r} needs a number or a string value")
        return self


class EventCondition(Condition):
    """A condition on an event: the path starts at an event attribute (see EVENT_ATTRIBUTES)."""

    @model_validator(mode="after")
    def _check_root(self) -> EventCondition:
        root = self.field.split(".", 1)[0]
        if root not in EVENT_ATTRIBUTES:
            raise ValueError(
                f"field {self.field!r}: must start with one of {sorted(EVENT_ATTRIBUTES)}"
            )
        return self


class Step(ConfigModel):
    """Which events count for one step of a rule, and how many are needed (``count``)."""

    action: Text | None = None  # ActionEvent.name
    event_type: Text | None = None  # TelemetryEvent.event_type
    kind: ActionKind | None = None
    status: Status | None = None
    where: tuple[EventCondition, ...] = ()
    count: PositiveInt = 1

    @model_validator(mode="after")
    def _check(self) -> Step:
        if self.event_type is not None and (self.action, self.kind, self.status) != (None,) * 3:
            raise ValueError("event_type matches telemetry: no action, kind or status with it")
        if (self.action, self.event_type, self.kind) == (None,) * 3:
            raise ValueError("a step needs action, event_type or kind")
        return self


def _value_shorthand(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"constant": value}
    return value


class OutcomeValue(ConfigModel):
    """A constant, or a numeric field of the events that matched step ``step`` (0-based)."""

    constant: float | None = None
    path: FieldPath | None = None
    step: int = Field(default=0, ge=0)
    agg: Literal["first", "sum"] = "first"
    default: float = 0.0  # when the field is missing or not a number

    @model_validator(mode="after")
    def _check(self) -> OutcomeValue:
        if (self.constant is None) == (self.path is None):
            raise ValueError("value: give exactly one of 'constant' or 'path'")
        return self


class OutcomeRule(ConfigModel):
    """An outcome derived from actions and telemetry. See docs/control-plane.md."""

    id: RuleId
    revision: PositiveInt = 1
    name: Text
    steps: tuple[Step, ...] = Field(min_length=1, max_length=32)
    order: Literal["any", "sequence"] = "any"
    scope: Literal["trajectory", "user"] = "trajectory"
    within: Duration | None = None
    repeat: bool = False
    value: Annotated[OutcomeValue, BeforeValidator(_value_shorthand)] = OutcomeValue(constant=1)

    @model_validator(mode="after")
    def _check(self) -> OutcomeRule:
        if self.scope == "user" and self.within is None:
            raise ValueError("scope 'user' needs a 'within' time window")
        if self.value.path is not None and self.value.step >= len(self.steps):
            raise ValueError(f"value.step {self.value.step}: the rule has {len(self.steps)} steps")
        return self


class SeatRule(ConfigModel):
    """Seats per period: ``active`` users over a trailing window, or ``assigned`` by attributes."""

    id: RuleId
    name: Text
    kind: Literal["active", "assigned"]
    period: Literal["day", "month"] = "month"
    window: Duration | None = None  # active: trailing window ending at the period end
    actions: tuple[Text, ...] = ()  # active: only these action names count (empty: any)
    event_types: tuple[Text, ...] = ()  # active: only these telemetry types count
    min_events: PositiveInt = 1
    where: tuple[Condition, ...] = ()  # assigned: conditions on user attributes
    match: Literal["all", "any"] = "all"

    @model_validator(mode="after")
    def _check(self) -> SeatRule:
        if self.kind == "active" and self.window is None:
            raise ValueError("kind 'active' needs a 'window' (e.g. '30d')")
        if self.kind == "assigned" and not self.where:
            raise ValueError("kind 'assigned' needs 'where' conditions on user attributes")
        if self.kind == "assigned" and (self.window or self.actions or self.event_types):
            raise ValueError("kind 'assigned' takes no window, actions or event_types")
        return self


class PriceOverride(ConfigModel):
    """USD per million tokens (keys as in ``meterline.producers.llm.pricing.PriceOverrides``)."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    cache_write: float | None = Field(default=None, ge=0)


class TokenPrices(ConfigModel):
    """USD per million tokens of one price (or one tier). ``cached_input`` (prompt-cache
    reads) and ``cache_write`` default to ``input``; ``reasoning`` defaults to ``output``."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    cache_write: float | None = Field(default=None, ge=0)
    reasoning: float | None = Field(default=None, ge=0)


class PriceTier(TokenPrices):
    """Prices for a call whose prompt (every input token, cached ones included) has more
    than ``above`` tokens: they apply to all of its tokens (the providers' cliff model)."""

    above: int = Field(ge=0)


class PriceRule(TokenPrices):
    """One server-side price (``meterline.stream_processors.pricing``): the model as the event names
    it (case-insensitive, exact), for one ``provider`` and one ``project`` or all of them,
    in force for events with ``effective_from <= timestamp < effective_to``."""

    model: Text
    provider: Text | None = None
    project: Text | None = None
    effective_from: UtcDatetime | None = None
    effective_to: UtcDatetime | None = None
    tiers: tuple[PriceTier, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> PriceRule:
        if self.effective_from and self.effective_to and self.effective_to <= self.effective_from:
            raise ValueError("effective_to must be after effective_from")
        above = [t.above for t in self.tiers]
        if above != sorted(set(above)):
            raise ValueError("tiers: 'above' must increase strictly")
        return self


#: Which cost the bill uses: the producer's reported (provider) cost when there is one,
#: else the price book's; or always the price book's.
CostPolicy = Literal["provider_else_computed", "computed"]


class PricingSettings(ConfigModel):
    """The billed-cost policy: ``policy`` for every project, ``projects`` per project."""

    policy: CostPolicy = "provider_else_computed"
    projects: dict[Text, CostPolicy] = Field(default_factory=dict)

    def policy_for(self, project: str) -> CostPolicy:
        return self.projects.get(project, self.policy)


class ControlPlane(ConfigModel):
    """One version of the control-plane file. ``version`` must increase on every change."""

    version: PositiveInt
    display_names: dict[Text, Text] = Field(default_factory=dict)
    outcome_rules: tuple[OutcomeRule, ...] = ()
    seat_rules: tuple[SeatRule, ...] = ()
    price_overrides: dict[Text, PriceOverride] = Field(default_factory=dict)
    prices: tuple[PriceRule, ...] = ()
    pricing: PricingSettings = Field(default_factory=PricingSettings)

    @model_validator(mode="after")
    def _unique_ids(self) -> ControlPlane:
        for kind, ids in (
            ("outcome_rules", [r.id for r in self.outcome_rules]),
            ("seat_rules", [r.id for r in self.seat_rules]),
        ):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            if dupes:
                raise ValueError(f"{kind}: duplicate id {', '.join(dupes)}")
        return self

    def price_mapping(self) -> dict[str, dict[str, float]]:
        """Plain mapping for ``PriceOverrides.from_mapping``."""
        return {m: p.model_dump(exclude_none=True) for m, p in self.price_overrides.items()}

    def display_name(self, action: str) -> str:
        return self.display_names.get(action, action)

"""Records produced by meterline's own stream processors."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from meterline.schemas.common import Id, UtcDatetime, WireModel, utc_now
from meterline.schemas.events import ActionEvent, CostUsd, TelemetryEvent, TrajectoryRecord

#: Version of an enriched event emitted before its trajectory was known.
VERSION_UNJOINED = 1
#: Version of an enriched event joined to its trajectory. Higher wins in ClickHouse.
VERSION_JOINED = 2


#: Which cost an event's bill uses (``Pricing.cost_source``).
CostSource = Literal["provider", "computed", "none", "reported"]
#: What the price book made of an llm_call (``Pricing.price_status``).
PriceStatus = Literal["priced", "unpriced", "invalid_tokens"]


class Pricing(BaseModel):
    """What the processor's price book made of one ``llm_call``
    (:mod:`meterline.stream_processors.pricing`).

    ``computed_cost_usd`` is None when the book could not price it (``unpriced``) or its
    token parts exceed their totals (``invalid_tokens``). ``billed_cost_usd`` is the cost
    the bill uses: the producer's reported ``cost_usd`` (``cost_source="provider"``), the
    computed one (``"computed"``) or nothing (``"none"``: unpriced or invalid, never
    silently $0 -- ``price_status`` says why). ``price_book`` names the book's version.
    Part of an enriched event, so it carries no schema version of its own.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    computed_cost_usd: CostUsd | None = None
    billed_cost_usd: CostUsd = 0.0
    cost_source: CostSource = "none"
    price_status: PriceStatus = "unpriced"
    price_book: str = ""


class EnrichedEvent(WireModel):
    """A deduplicated event and what is known of its trajectory when it was emitted.

    The same event may be emitted twice: first unjoined (``version`` 1) when its trajectory
    had not arrived yet, then joined (``version`` 2). ClickHouse keeps the highest version.
    """

    type: Literal["enriched"] = "enriched"
    event: ActionEvent | TelemetryEvent = Field(discriminator="type")
    trajectory: TrajectoryRecord | None = None
    version: int = VERSION_UNJOINED
    processed_at: UtcDatetime = Field(default_factory=utc_now)
    #: set by the processor's price book on ``llm_call`` events (None: not priced)
    pricing: Pricing | None = None

    @property
    def joined(self) -> bool:
        return self.trajectory is not None


class TrajectoryState(WireModel):
    """The merged state of one trajectory after each record for it. Higher version wins."""

    type: Literal["trajectory_state"] = "trajectory_state"
    trajectory: TrajectoryRecord
    version: int = 1


class DeadLetter(WireModel):
    """A record that could not be processed, with the original bytes and why.

    ``payload`` holds the original bytes exactly (base64 in JSON): for a record inside a
    batch message (:mod:`meterline.schemas.framing`), that record's line; ``item`` is its index
    there.
    """

    model_config = WireModel.model_config | {"ser_json_bytes": "base64", "val_json_bytes": "base64"}

    type: Literal["dead_letter"] = "dead_letter"
    source_topic: str
    partition: int
    offset: int
    item: int = Field(default=0, ge=0)
    key: bytes | None = None
    payload: bytes
    reason: str
    error_type: str = "invalid_record"
    stage: Id = "validate"
    received_at: UtcDatetime = Field(default_factory=utc_now)

    @property
    def dead_letter_id(self) -> str:
        where = f"{self.source_topic}/{self.partition}/{self.offset}"
        return f"{where}/{self.item}" if self.item else where

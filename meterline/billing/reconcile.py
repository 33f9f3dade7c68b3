"""``meterline reconcile``: what meterline tracked against what the provider billed, per
UTC day and model, from the provider's own export (a file: no network).

Formats (as the providers document them):

* ``openai``: the organization Costs API (``GET /v1/organization/costs``,
  ``group_by=line_item``): a page ``{"object": "page", "data": [bucket, ...]}`` (or a JSON
  list of pages), each bucket ``{"start_time": <unix s>, "results": [{"amount": {"value":
  <USD>, "currency": "usd"}, "line_item": "<model>, <input|output|cached input|...>"}]}``.
  The model is the line item's part before the first comma; a result without a line item
  counts for the day as a whole (model ``*``).
* ``anthropic``: the Admin API cost report (``GET /v1/organizations/cost_report``,
  ``group_by[]=description``): ``{"data": [{"starting_at": "<RFC 3339>", "results":
  [{"amount": "<decimal string, cents>", "currency": "USD", "model": "...", ...}]}]}`` (or a
  list of such pages). Results without a model (web search, code execution, or no
  grouping) count for the day as a whole (model ``*``).

Tracked: the billed cost (``billed_cost_usd``) of the provider's llm_calls in ``events
FINAL`` on the export's days, by day and model (the model the API reported, as the SDK
records it). A day the export gives as a whole (``*``) is compared with the day's total.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from meterline.billing.errors import BillingError
from meterline.sinks.clickhouse.identifiers import check_identifier

Provider = Literal["openai", "anthropic"]
WHOLE_DAY = "*"
Key = tuple[date, str]


class ExportError(BillingError):
    """The export file is not in the provider's documented format."""


@dataclass(frozen=True)
class Drift:
    day: date
    model: str
    tracked_usd: float
    billed_usd: float

    @property
    def drift_usd(self) -> float:
        return self.tracked_usd - self.billed_usd

    @property
    def drift_pct(self) -> float:
        if self.billed_usd == 0:
            return 0.0 if self.tracked_usd == 0 else float("inf")
        return 100.0 * self.drift_usd / self.billed_usd

    def over(self, pct: float, min_usd: float) -> bool:
        return abs(self.drift_usd) > min_usd and abs(self.drift_pct) > pct


def _pages(data: Any) -> list[dict[str, Any]]:
    pages = data if isinstance(data, list) else [data]
    if not all(isinstance(p, dict) and isinstance(p.get("data"), list) for p in pages):
        raise ExportError("expected a page object with a 'data' list (or a list of pages)")
    return pages


def parse_openai(data: Any) -> dict[Key, float]:
    billed: dict[Key, Decimal] = defaultdict(Decimal)
    for page in _pages(data):
        for bucket in page["data"]:
            try:
                day = datetime.fromtimestamp(int(bucket["start_time"]), UTC).date()
                for r in bucket.get("results") or ():
                    amount = r.get("amount") or {}
                    if str(amount.get("currency", "usd")).lower() != "usd":
                        raise ExportError(f"currency {amount.get('currency')!r}: only usd")
                    item = r.get("line_item")
                    model = item.split(",")[0].strip() if item else WHOLE_DAY
                    billed[(day, model)] += Decimal(str(amount.get("value", 0)))
            except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
                raise ExportError(f"openai costs bucket {bucket!r:.200}: {exc}") from None
    return {k: float(v) for k, v in billed.items()}


def parse_anthropic(data: Any) -> dict[Key, float]:
    billed: dict[Key, Decimal] = defaultdict(Decimal)
    for page in _pages(data):
        for bucket in page["data"]:
            try:
                start = datetime.fromisoformat(str(bucket["starting_at"]).replace("Z", "+00:00"))
                day = start.astimezone(UTC).date()
                for r in bucket.get("results") or ():
                    if str(r.get("currency", "USD")).upper() != "USD":
                        raise ExportError(f"currency {r.get('currency')!r}: only USD")
                    model = r.get("model") or WHOLE_DAY
                    billed[(day, model)] += Decimal(str(r["amount"])) / 100  # cents
            except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
                raise ExportError(f"anthropic cost bucket {bucket!r:.200}: {exc}") from None
    return {k: float(v) for k, v in billed.items()}


PARSERS = {"openai": parse_openai, "anthropic": parse_anthropic}


def load_export(provider: Provider, text: str | bytes) -> dict[Key, float]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ExportError(f"not JSON: {exc}") from None
    return PARSERS[provider](data)


def tracked(
    client: Any, database: str, provider: str, days: list[date], project: str | None
) -> dict[Key, float]:
    db = check_identifier(database)
    where = "kind = 'llm_call' AND provider = %(provider)s AND toDate(timestamp) IN %(days)s"
    if project:
        where += " AND project = %(project)s"
    rows = client.query(
        f"SELECT toDate(timestamp) AS d, model, sum(billed_cost_usd) FROM {db}.events FINAL "
        f"WHERE {where} GROUP BY d, model",
        parameters={"provider": provider, "days": days, "project": project or ""},
    ).result_rows
    return {(d if isinstance(d, date) else date.fromisoformat(str(d)), str(m)): float(c)
            for d, m, c in rows}  # fmt: skip


def reconcile(
    client: Any, database: str, provider: Provider, billed: dict[Key, float],
    project: str | None = None,
) -> list[Drift]:  # fmt: skip
    """One :class:`Drift` per day and model of the export or of meterline's events on the
    export's days, ordered by day and model."""
    days = sorted({d for d, _ in billed})
    if not days:
        return []
    mine = tracked(client, database, provider, days, project)
    whole = {d for d, m in billed if m == WHOLE_DAY}
    out: dict[Key, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for (d, m), usd in mine.items():
        out[(d, WHOLE_DAY if d in whole else m)][0] += usd
    for key, usd in billed.items():
        out[key][1] += usd
    return [Drift(d, m, t, b) for (d, m), (t, b) in sorted(out.items())]


def render(drifts: list[Drift], pct: float, min_usd: float) -> str:
    lines = [f"{'day':<10} {'model':<36} {'tracked USD':>14} {'billed USD':>14} "
             f"{'drift USD':>12} {'drift %':>9}"]  # fmt: skip
    for x in drifts:
        flag = "  OVER" if x.over(pct, min_usd) else ""
        lines.append(
            f"{x.day.isoformat():<10} {x.model:<36} {x.tracked_usd:>14.6f} {x.billed_usd:>14.6f}"
            f" {x.drift_usd:>+12.6f} {x.drift_pct:>+8.2f}%{flag}"
        )
    t = sum(x.tracked_usd for x in drifts)
    b = sum(x.billed_usd for x in drifts)
    lines.append(f"{'total':<10} {'':<36} {t:>14.6f} {b:>14.6f} {t - b:>+12.6f}")
    return "\n".join(lines) + "\n"


def export_days(billed: dict[Key, float]) -> tuple[date, date] | None:
    days = sorted({d for d, _ in billed})
    return (days[0], days[-1] + timedelta(days=1)) if days else None

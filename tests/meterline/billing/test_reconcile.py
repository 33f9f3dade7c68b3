"""Parsing the providers' cost exports (fixtures in their documented formats) and the
drift table; the drift against ClickHouse is in tests/integration/test_pricing.py."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from meterline.billing.reconcile import (
    WHOLE_DAY,
    Drift,
    ExportError,
    load_export,
    render,
)

FIXTURES = Path(__file__).parent / "fixtures"
NOV10 = date(2026, 11, 10)


def test_openai_costs_by_day_and_model_from_line_items() -> None:
    got = load_export("openai", (FIXTURES / "openai_costs.json").read_bytes())
    assert got == {(NOV10, "gpt-4o-mini-2024-07-18"): pytest.approx(0.0003)}
    page = json.loads((FIXTURES / "openai_costs.json").read_text())
    page["data"][0]["results"][0]["line_item"] = None  # not grouped by line item
    both = load_export("openai", json.dumps([page, {"object": "page", "data": []}]))
    assert both[(NOV10, WHOLE_DAY)] == pytest.approx(0.00009)


def test_anthropic_amounts_are_cents() -> None:
    got = load_export("anthropic", (FIXTURES / "anthropic_cost_report.json").read_bytes())
    assert got == {(NOV10, "claude-sonnet-4-5-20250929"): pytest.approx(0.03515)}


@pytest.mark.parametrize(
    "text",
    [b"[", b'{"data": 3}', b'{"data": [{"starting_at": "x", "results": []}]}',
     b'{"data": [{"starting_at": "2026-11-10T00:00:00Z", "results": [{"amount": "1", '
     b'"currency": "EUR"}]}]}'],
)  # fmt: skip
def test_a_malformed_export_is_refused(text: bytes) -> None:
    with pytest.raises(ExportError):
        load_export("anthropic", text)


def test_drift_over_the_threshold_is_flagged() -> None:
    close, far = Drift(NOV10, "m", 1.005, 1.0), Drift(NOV10, "n", 0.5, 1.0)
    assert not close.over(1.0, 0.01) and far.over(1.0, 0.01)
    assert Drift(NOV10, "o", 0.5, 0.0).over(1.0, 0.01)  # billed nothing, tracked something
    table = render([close, far], 1.0, 0.01)
    assert "-50.00%  OVER" in table and table.count("OVER") == 1

"""The price book in the running stream (real Tansu + chDB), one pipeline for all of it:
an unpriced model lands unpriced and shows in status; an effective-dated change mid-month
prices each event by its own time; tiers; OpenAI and Anthropic cache/reasoning shapes;
token parts over their total flagged; provenance columns and the per-project policy; a
hot reload of a price; then reprice: every cost equals an independent oracle computed from
the raw tokens, the billing views sum the chosen cost, and re-pricing twice writes
nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage, calc_price

from meterline.billing.reconcile import load_export, reconcile
from meterline.billing.reprice import reprice
from meterline.ops.status import print_unpriced
from meterline.producers import MeterlineProducer
from meterline.schemas import ActionEvent, ActionKind
from meterline.sinks.clickhouse.writer import ClickHouseWriter
from meterline.stream_processors.control_plane import load_control_plane
from tests.fixtures import wait_until

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).parent.parent / "meterline" / "billing" / "fixtures"

CP1 = """
version: 1
prices:
  - {model: acme-llm, provider: acme, effective_to: "2026-11-15T00:00:00Z", input: 1, output: 2}
  - {model: acme-llm, provider: acme, effective_from: "2026-11-15T00:00:00Z", input: 3, output: 4}
  - model: long-llm
    input: 1.0
    output: 1.0
    tiers: [{above: 1000, input: 10.0, output: 10.0}]
pricing:
  projects: {strict: computed}
"""
MYSTERY = "  - {model: mystery-9, provider: acme, input: 5.0, output: 6.0}\n"


def cp2() -> str:
    head, tail = CP1.replace("version: 1", "version: 2").split("pricing:")
    return head + MYSTERY + "pricing:" + tail


NOV10, NOV20 = datetime(2026, 11, 10, 12, tzinfo=UTC), datetime(2026, 11, 20, 12, tzinfo=UTC)


def llm(eid: str, model: str, provider: str, *, project: str = "p", ts: datetime = NOV10,
        **kw: Any) -> ActionEvent:  # fmt: skip
    return ActionEvent(event_id=eid, project=project, kind=ActionKind.LLM_CALL, name="llm",
                       model=model, provider=provider, timestamp=ts, **kw)  # fmt: skip


def genai(model: str, provider: str, ts: datetime, **usage: int) -> float:
    calc = calc_price(Usage(**usage), model, provider_id=provider, genai_request_timestamp=ts)
    return float(calc.total_price)


#: (event, oracle computed cost or None, oracle billed cost, cost_source, price_status)
def cases() -> list[tuple[ActionEvent, float | None, float, str, str]]:
    acme1 = (1000 * 1.0 + 500 * 2.0) / 1e6
    acme2 = (1000 * 3.0 + 500 * 4.0) / 1e6
    oai = genai("gpt-4o-mini-2024-07-18", "openai", NOV10, input_tokens=1000, cache_read_tokens=400,
                output_tokens=300)  # fmt: skip
    ant = genai("claude-sonnet-4-5-20250929", "anthropic", NOV10, input_tokens=3000,
                cache_read_tokens=1000, cache_write_tokens=1500, output_tokens=10)  # fmt: skip
    return [
        (llm("acme-nov10", "acme-llm", "acme", input_tokens=1000, output_tokens=500),
         acme1, acme1, "computed", "priced"),
        (llm("acme-nov20", "acme-llm", "acme", ts=NOV20, input_tokens=1000, output_tokens=500),
         acme2, acme2, "computed", "priced"),
        (llm("long-at", "long-llm", "x", input_tokens=1000, output_tokens=10),
         1010 / 1e6, 1010 / 1e6, "computed", "priced"),
        (llm("long-above", "long-llm", "x", input_tokens=1001, output_tokens=10),
         10110 / 1e6, 10110 / 1e6, "computed", "priced"),
        # OpenAI: prompt_tokens include the cached ones; reasoning is part of the output
        (llm("openai", "gpt-4o-mini-2024-07-18", "openai", input_tokens=1000, cached_tokens=400,
             output_tokens=300, properties={"reasoning_tokens": 120}),
         oai, oai, "computed", "priced"),
        # Anthropic raw usage: input_tokens exclude cache reads and writes
        (llm("anthropic-raw", "claude-sonnet-4-5-20250929", "anthropic", input_tokens=500,
             cached_tokens=1000, output_tokens=10,
             properties={"token_convention": "anthropic", "cache_creation_input_tokens": 1500}),
         ant, ant, "computed", "priced"),
        # the same call as the SDK records it (inclusive), with the SDK's own estimate
        (llm("anthropic-sdk", "claude-sonnet-4-5-20250929", "anthropic", input_tokens=3000,
             cached_tokens=1000, output_tokens=10, cost_usd=0.5,
             properties={"cache_creation_input_tokens": 1500, "cost_source": "genai-prices"}),
         ant, ant, "computed", "priced"),
        (llm("bad-tokens", "gpt-4o-mini-2024-07-18", "openai", input_tokens=10, cached_tokens=20),
         None, 0.0, "none", "invalid_tokens"),
        (llm("provider-cost", "acme-llm", "acme", input_tokens=1000, output_tokens=500,
             cost_usd=0.77), acme1, 0.77, "provider", "priced"),
        (llm("strict-cost", "acme-llm", "acme", project="strict", input_tokens=1000,
             output_tokens=500, cost_usd=0.77), acme1, acme1, "computed", "priced"),
        *[(llm(f"mystery-{i}", "mystery-9", "acme", input_tokens=100, output_tokens=7),
           None, 0.0, "none", "unpriced") for i in range(3)],
    ]  # fmt: skip


def priced_rows(pipeline: Any) -> dict[str, tuple[Any, ...]]:
    db = pipeline.settings.database
    return {
        r[0]: tuple(r[1:])
        for r in pipeline.clickhouse.query(
            "SELECT event_id, computed_cost_usd, billed_cost_usd, cost_source, price_status, "
            f"price_book, cost_usd FROM {db}.events FINAL WHERE kind = 'llm_call'"
        ).result_rows
    }


def send(pipeline: Any, events: list[ActionEvent]) -> None:
    assert pipeline.settings.kafka_bootstrap
    producer = MeterlineProducer(pipeline.settings.kafka_bootstrap, topics=pipeline.settings.topics)
    producer.send_many(events)
    assert producer.close() == 0


def check(rows: dict[str, tuple[Any, ...]], want: list[Any], book: str) -> None:
    for ev, computed, billed, source, status in want:
        got = rows[ev.event_id]
        assert got[0] == (None if computed is None else pytest.approx(computed, rel=1e-9)), ev
        assert (got[1], got[2], got[3], got[4]) == (
            pytest.approx(billed, rel=1e-9), source, status, book
        ), ev.event_id
        assert got[5] == ev.cost_usd  # the reported cost is kept as reported


def test_stream_pricing_status_hot_reload_and_reprice(
    pipeline_factory: Any, tmp_path: Path
) -> None:
    config = tmp_path / "control-plane.yaml"
    config.write_text(CP1)
    pipeline = pipeline_factory(control_plane=config)
    db = pipeline.settings.database
    want = cases()
    send(pipeline, [c[0] for c in want])
    assert wait_until(lambda: len(priced_rows(pipeline)) == len(want), 90, pipeline=pipeline)
    book1 = "genai-prices@0.2.5+cp1"
    check(priced_rows(pipeline), want, book1)

    lines: list[str] = []
    print_unpriced(pipeline.clickhouse, db, lines.append)
    mystery = [line.split() for line in lines if "mystery-9" in line]
    assert mystery == [["p", "acme", "mystery-9", "unpriced", "3", "300", "21"]], lines
    assert any("invalid_tokens" in line and "gpt-4o-mini-2024-07-18" in line for line in lines)

    # hot reload: version 2 prices mystery-9; the running worker picks it up
    config.write_text(cp2())
    late = llm("mystery-late", "mystery-9", "acme", input_tokens=100, output_tokens=7)

    sent: list[str] = []

    def late_priced() -> bool:
        sent.append(f"mystery-late-{len(sent)}")
        send(pipeline, [late.model_copy(update={"event_id": sent[-1]})])
        rows = priced_rows(pipeline)
        return any(k.startswith("mystery-late") and r[3] == "priced" for k, r in rows.items())

    assert wait_until(late_priced, 60, pipeline=pipeline, interval_s=2.5)
    assert wait_until(lambda: set(sent) <= set(priced_rows(pipeline)), 30, pipeline=pipeline)
    landed = priced_rows(pipeline)
    reloaded = [r for k, r in landed.items() if k.startswith("mystery-late") and r[3] == "priced"]
    assert reloaded[0][:4] == (pytest.approx(542e-6), pytest.approx(542e-6), "computed", "priced")
    assert reloaded[0][4] == "genai-prices@0.2.5+cp2"

    # reprice with the current book: the unpriced calls get their price; the oracle holds
    writer = ClickHouseWriter(pipeline.clickhouse, db)
    current = load_control_plane(config)
    first = reprice(writer, current, date(2026, 11, 1), date(2026, 11, 30))
    repriced = [
        (ev, 542e-6, 542e-6, "computed", "priced") if ev.model == "mystery-9" else (ev, *rest)
        for ev, *rest in want
    ]  # fmt: skip
    rows = priced_rows(pipeline)
    check(rows, repriced, "genai-prices@0.2.5+cp2")
    assert first.calls == len(rows) and first.unpriced == 1  # only bad-tokens stays
    assert reprice(writer, current, date(2026, 11, 1), date(2026, 11, 30)).repriced == 0

    # the billing views use the chosen cost: the oracle's billed sums, per project
    views = dict(pipeline.clickhouse.query(
        f"SELECT project, sum(llm_cost_usd) FROM {db}.usage_by_user_monthly GROUP BY project"
    ).result_rows)  # fmt: skip
    oracle = {"p": 0.0, "strict": 0.0}
    for ev, _, billed, *_ in repriced:
        oracle[ev.project] += billed
    oracle["p"] += 542e-6 * sum(k.startswith("mystery-late") for k in rows)
    assert views == pytest.approx(oracle, rel=1e-9)
    lines.clear()
    print_unpriced(pipeline.clickhouse, db, lines.append)
    assert not any("mystery-9" in line for line in lines)

    # reconcile against the providers' exports: OpenAI matches, Anthropic bills $0.02 more
    for provider, name, over in (("openai", "openai_costs.json", False),
                                 ("anthropic", "anthropic_cost_report.json", True)):  # fmt: skip
        export = load_export(provider, (FIXTURES / name).read_bytes())  # type: ignore[arg-type]
        drifts = reconcile(pipeline.clickhouse, db, provider, export, "p")  # type: ignore[arg-type]
        day = [d for d in drifts if d.day == date(2026, 11, 10)]
        assert len(day) == 1, drifts
        assert day[0].over(1.0, 0.01) is over, drifts
        assert day[0].drift_usd == pytest.approx(-0.02 if over else 0.0, abs=1e-9), drifts


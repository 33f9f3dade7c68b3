"""The dashboard in a real browser, on the real pipeline fed with demo traffic.

Headless Chromium loads the page; the test reads the numbers the page shows (the tables
next to each chart, and the data inside the Chart.js charts) and compares them with
ClickHouse and with what the traffic generator sent. Screenshots land in
``.artifacts/`` of the repository (and the test's tmp_path).
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from meterline.dashboard import DashboardServer
from meterline.demo.report import counts
from meterline.demo.run import wait_for
from meterline.demo.traffic import Traffic, generate
from meterline.embedded.runtime import Pipeline
from meterline.producers import MeterlineProducer
from meterline.schemas import ActionEvent, ActionKind, Status
from tests.fixtures import wait_until

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[3] / ".artifacts"
BAD_RECORDS = [b'{"type": "action", "event_id": '] * 3 + [b'{"type": "action", "name": "x"}'] * 2

READ_TABLE = """
return [...document.querySelectorAll(`[data-panel="${arguments[0]}"] table.data tbody tr`)]
  .map((tr) => Object.fromEntries([...tr.cells].map((td) => [td.dataset.key, td.dataset.value])));
"""
READ_CHART = """
const chart = Chart.getChart(document.getElementById("chart-" + arguments[0]));
return chart.data.datasets.map((d) => [d.label, d.data.reduce((a, b) => a + b, 0)]);
"""
READ_TILES = """
return Object.fromEntries([...document.querySelectorAll(".tile")]
  .map((t) => [t.dataset.key, t.dataset.value]));
"""


def send(pipeline: Pipeline, *traffic: Traffic) -> None:
    assert pipeline.settings.kafka_bootstrap
    producer = MeterlineProducer(pipeline.settings.kafka_bootstrap, topics=pipeline.settings.topics)
    for t in traffic:
        producer.send_many(t.records)
    for i, payload in enumerate(BAD_RECORDS):
        producer.send_bytes(pipeline.settings.topics.actions, f"bad-{i}".encode(), payload)
    assert producer.close() == 0


def load(driver: Any, url: str, generation: int = 1) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    if url:
        driver.get(url)

    def ready(d: Any) -> bool:
        body = d.find_element("tag name", "body")
        return bool(
            body.get_attribute("data-state") == "ready"
            and int(body.get_attribute("data-generation")) >= generation
        )

    WebDriverWait(driver, 30).until(ready, "the dashboard did not finish loading")


def apply(driver: Any, generation: int, **fields: str) -> None:
    """Choose filter values the way a person does, press Apply, wait for the redraw."""
    from selenium.webdriver.support.ui import Select

    for name, value in fields.items():
        Select(driver.find_element("id", name)).select_by_value(value)
    driver.find_element("id", "apply").click()
    load(driver, "", generation)


def screenshot(driver: Any, tmp_path: Path, name: str) -> None:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1440, height + 40)
    path = tmp_path / name
    assert driver.save_screenshot(str(path)), "screenshot failed"
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(path, ARTIFACTS / name)
    driver.set_window_size(1440, 1000)


def llm_totals(traffic: Traffic, attr: str) -> dict[str, tuple[int, int, int, float]]:
    out: dict[str, list[Any]] = defaultdict(lambda: [0, 0, 0, 0.0])
    for e in traffic.unique_events.values():
        if isinstance(e, ActionEvent) and e.kind is ActionKind.LLM_CALL:
            row = out[getattr(e, attr)]
            row[0] += 1
            row[1] += e.input_tokens or 0
            row[2] += e.output_tokens or 0
            row[3] += e.cost_usd or 0.0
    return {k: (v[0], v[1], v[2], v[3]) for k, v in out.items()}


def test_the_dashboard_shows_the_numbers_clickhouse_holds(
    pipeline_factory: Callable[..., Pipeline],
    serve_dashboard: Callable[[Any, str], DashboardServer],
    browser: Any,
    tmp_path: Path,
) -> None:
    pipeline = pipeline_factory()
    acme = generate(project="acme", events=1_500, users=6, seed=11)
    globex = generate(project="globex", events=300, users=3, seed=5)
    send(pipeline, acme, globex)
    ch, db = pipeline.clickhouse, pipeline.settings.database
    for traffic in (acme, globex):
        got = wait_for(pipeline, traffic, timeout_s=90)
        assert got.events == got.joined == len(traffic.unique_events), got
    assert wait_until(lambda: counts(ch, db, "acme").dead_letters == 5, 30, pipeline=pipeline)

    server = serve_dashboard(ch, db)
    load(browser, server.url + "?project=acme")
    screenshot(browser, tmp_path, "dashboard.png")

    # overview tiles: events, joins and LLM totals of the project
    tiles = browser.execute_script(READ_TILES)
    assert int(tiles["events"]) == len(acme.unique_events)
    assert float(tiles["joined"]) == 1.0
    assert int(tiles["trajectories"]) == len(acme.trajectories)
    expected_users = llm_totals(acme, "user_id")
    assert float(tiles["cost_usd"]) == pytest.approx(sum(v[3] for v in expected_users.values()))

    # usage and cost per user and per model: table and chart against ClickHouse and the sender
    for panel, attr, dim in (
        ("usage_by_user", "user_id", "user_id"),
        ("usage_by_model", "model", "model"),
    ):
        shown = {r["key"]: r for r in browser.execute_script(READ_TABLE, panel)}
        in_clickhouse = {
            str(k): (n, tin, tout, cost)
            for k, n, tin, tout, cost in ch.query(
                f"SELECT {dim}, count(), sum(input_tokens), sum(output_tokens), sum(cost_usd) "
                f"FROM {db}.events FINAL WHERE project = 'acme' AND kind = 'llm_call' "
                f"GROUP BY {dim}"
            ).result_rows
        }
        expected = llm_totals(acme, attr)
        assert set(shown) == set(in_clickhouse) == set(expected), panel
        for key, (n, tin, tout, cost) in in_clickhouse.items():
            row = shown[key]
            assert (
                (int(row["calls"]), int(row["input_tokens"]), int(row["output_tokens"]))
                == (
                    n,
                    tin,
                    tout,
                )
                == expected[key][:3]
            ), (panel, key)
            assert float(row["cost_usd"]) == pytest.approx(cost) == pytest.approx(expected[key][3])
        charted = dict(browser.execute_script(READ_CHART, panel))
        assert charted.keys() == in_clickhouse.keys(), panel
        for key, total in charted.items():
            assert total == pytest.approx(in_clickhouse[key][3]), (panel, key)

    # action latency and error rates per action
    shown_actions = {
        (r["kind"], r["name"]): r for r in browser.execute_script(READ_TABLE, "latency")
    }
    sent: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for e in acme.unique_events.values():
        if isinstance(e, ActionEvent):
            sent[(e.kind.value, e.name)][0] += 1
            sent[(e.kind.value, e.name)][1] += e.status is Status.ERROR
    rows = ch.query(
        f"SELECT kind, name, count(), countIf(status = 'error'), "
        f"quantileExact(0.95)(duration_ms) FROM {db}.events FINAL "
        f"WHERE project = 'acme' AND record_type = 'action' GROUP BY kind, name"
    ).result_rows
    assert set(shown_actions) == set(sent) == {(k, n) for k, n, *_ in rows}
    assert sum(e for _, e in sent.values()) > 0, "the demo traffic should contain errors"
    for kind, name, n, errors, p95 in rows:
        row = shown_actions[(kind, name)]
        assert [int(row["calls"]), int(row["errors"])] == [n, errors] == sent[(kind, name)]
        assert float(row["error_rate"]) == pytest.approx(errors / n)
        assert float(row["p95_ms"]) == pytest.approx(p95)

    # rules-derived panels: the sink creates their tables; no control plane, so no rows
    for panel in ("outcomes", "seats", "cost_per_outcome"):
        section = browser.find_element("css selector", f'[data-panel="{panel}"]')
        assert section.get_attribute("data-status") == "ok"
        assert "No data in this period." in section.text

    # project filter: globex has its own numbers
    apply(browser, 2, project="globex", preset="all")
    tiles = browser.execute_script(READ_TILES)
    assert int(tiles["events"]) == len(globex.unique_events)
    shown = {r["key"]: r for r in browser.execute_script(READ_TABLE, "usage_by_user")}
    assert {k: int(v["calls"]) for k, v in shown.items()} == {
        k: v[0] for k, v in llm_totals(globex, "user_id").items()
    }

    # period filter: the dead letters arrived in the last hour; the demo events did not
    apply(browser, 3, project="acme", preset="1h")
    tiles = browser.execute_script(READ_TILES)
    assert int(tiles["events"]) == 0
    in_clickhouse = dict(
        ch.query(
            f"SELECT error_type, count() FROM {db}.dead_letters FINAL GROUP BY error_type"
        ).result_rows
    )
    assert int(tiles["dead_letters"]) == sum(in_clickhouse.values()) == len(BAD_RECORDS)
    shown_dl = browser.execute_script(READ_TABLE, "dead_letters")
    assert {r["error_type"]: int(r["count"]) for r in shown_dl} == in_clickhouse
    assert dict(browser.execute_script(READ_CHART, "dead_letters")) == pytest.approx(in_clickhouse)
    screenshot(browser, tmp_path, "dashboard-last-hour.png")
    assert not [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"], (
        "the page logged errors"
    )

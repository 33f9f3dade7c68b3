"""The dashboard's HTTP API on a real chDB: panel numbers, refusals, static files.

Rows are written with the sink's own row mapping into a fresh database per test; the
rules-derived tables (outcomes, seat_counts) are created here with the columns that
``queries.REQUIRED_COLUMNS`` names, until the rules stage ships their DDL.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.error import HTTPError
from urllib.parse import urlencode
from urllib.request import urlopen

import pytest

from meterline.dashboard import DashboardServer
from meterline.dashboard.filters import BUCKETS, floor
from meterline.schemas import ActionEvent, ActionKind, Status, TelemetryEvent, TrajectoryRecord
from meterline.schemas.derived import DeadLetter, EnrichedEvent
from meterline.sinks.clickhouse.rows import dead_letter_row, event_row
from meterline.sinks.clickhouse.writer import ClickHouseWriter

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
PERIOD = {"from": "2026-11-01T10:00:00Z", "to": "2026-11-01T11:00:00Z"}


def _events(project: str) -> list[EnrichedEvent]:
    traj = TrajectoryRecord(project=project, trace_id="t1", user_id="ann", timestamp=T0)
    llm = [
        ActionEvent(
            project=project, event_id=f"llm-{i}", trace_id="t1" if i < 3 else "t2",
            user_id="ann" if i % 2 else "bob", kind=ActionKind.LLM_CALL, name="chat",
            model="gpt-4o" if i < 4 else "haiku", input_tokens=100 * i, output_tokens=10 * i,
            cost_usd=0.25 * i, duration_ms=100.0 * (i + 1), timestamp=T0 + timedelta(minutes=i),
        )
        for i in range(6)
    ]  # fmt: skip
    tools = [
        ActionEvent(
            project=project, event_id=f"tool-{i}", name="search", kind=ActionKind.TOOL_CALL,
            status=Status.ERROR if i < 2 else Status.SUCCESS, duration_ms=10.0 * (i + 1),
            timestamp=T0 + timedelta(minutes=30 + i),
        )
        for i in range(8)
    ]  # fmt: skip
    tele = TelemetryEvent(project=project, event_id="tele", event_type="user.accept", timestamp=T0)
    return [
        EnrichedEvent(event=e, trajectory=traj if e.trace_id == "t1" else None, version=2)
        for e in [*llm, *tools, tele]
    ]


@pytest.fixture
def database(clickhouse: Any) -> Iterator[str]:
    db = f"dash_{uuid.uuid4().hex[:10]}"
    writer = ClickHouseWriter(clickhouse, db)
    writer.ensure_schema()
    writer.insert("events", [event_row(e) for e in _events("acme") + _events("other")])
    writer.insert(
        "dead_letters",
        [
            dead_letter_row(
                DeadLetter(
                    source_topic="m.actions", partition=0, offset=i, payload=b"{",
                    reason="Invalid JSON", error_type="invalid_json", received_at=T0,
                )
            )
            for i in range(3)
        ],
    )  # fmt: skip
    yield db
    clickhouse.command(f"DROP DATABASE IF EXISTS {db}")


@pytest.fixture
def api(
    clickhouse: Any, database: str, serve_dashboard: Callable[[Any, str], DashboardServer]
) -> Callable[..., Any]:
    server = serve_dashboard(clickhouse, database)

    def get(path: str, **query: str) -> Any:
        url = server.url.rstrip("/") + path + ("?" + urlencode(query) if query else "")
        with urlopen(url, timeout=10) as resp:
            return json.load(resp)

    get.url = server.url  # type: ignore[attr-defined]
    return get


def rows(panel: dict[str, Any], key: str) -> dict[str, dict[str, Any]]:
    return {r[key]: r for r in panel["table"]["rows"]}


def test_panels_report_the_numbers_of_one_project_and_period(api: Callable[..., Any]) -> None:
    assert api("/api/projects")["projects"] == [
        {"project": "acme", "first": "2026-11-01T10:00:00Z", "last": "2026-11-01T10:37:00Z"},
        {"project": "other", "first": "2026-11-01T10:00:00Z", "last": "2026-11-01T10:37:00Z"},
    ]
    summary = api("/api/panel/summary", project="acme", **PERIOD)["table"]["rows"][0]
    assert summary == {
        "events": 15, "joined": pytest.approx(3 / 15), "trajectories": 2, "users": 2,
        "llm_calls": 6, "tokens": 1650, "cost_usd": pytest.approx(3.75),
        "error_rate": pytest.approx(2 / 14), "dead_letters": 3,
    }  # fmt: skip
    by_model = api("/api/panel/usage_by_model", project="acme", **PERIOD)
    assert rows(by_model, "key")["gpt-4o"] == {
        "key": "gpt-4o", "calls": 4, "input_tokens": 600, "output_tokens": 60,
        "cost_usd": pytest.approx(1.5),
    }  # fmt: skip
    cost, tokens = by_model["charts"]
    assert (cost["unit"], tokens["unit"], cost["bucket"]) == ("USD", "tokens", "minute")
    assert len(cost["labels"]) == 60 and cost["labels"][0] == "2026-11-01T10:00:00Z"
    assert {d["label"]: sum(d["data"]) for d in cost["datasets"]} == pytest.approx(
        {"gpt-4o": 1.5, "haiku": 2.25}
    )
    by_user = rows(api("/api/panel/usage_by_user", project="acme", **PERIOD), "key")
    assert {k: v["calls"] for k, v in by_user.items()} == {"ann": 3, "bob": 3}
    latency = api("/api/panel/latency", project="acme", **PERIOD)["table"]["rows"]
    search = next(r for r in latency if r["name"] == "search")
    assert search | {"error_rate": 0} == {
        "kind": "tool_call", "name": "search", "calls": 8, "errors": 2, "error_rate": 0,
        "p50_ms": 50.0, "p95_ms": 80.0,
    }  # fmt: skip
    assert search["error_rate"] == pytest.approx(0.25)
    dead = api("/api/panel/dead_letters", project="acme", **PERIOD)
    assert rows(dead, "error_type")["invalid_json"]["count"] == 3


def test_the_period_and_the_bucket_narrow_the_numbers(api: Callable[..., Any]) -> None:
    first_ten = {"from": "2026-11-01T10:00:00Z", "to": "2026-11-01T10:10:00Z"}
    summary = api("/api/panel/summary", project="acme", **first_ten)["table"]["rows"][0]
    assert (summary["events"], summary["llm_calls"]) == (7, 6)
    hourly = api("/api/panel/events", project="acme", bucket="hour", **PERIOD)
    assert hourly["filters"]["bucket"] == "hour"
    assert hourly["chart"]["labels"] == ["2026-11-01T10:00:00Z"]


def test_sql_shaped_filters_stay_data(api: Callable[..., Any]) -> None:
    for project in ("acme' OR 1=1 --", "acme\\' OR \\'1\\'=\\'1"):
        summary = api("/api/panel/summary", project=project, **PERIOD)["table"]["rows"][0]
        assert summary["events"] == 0


@pytest.mark.parametrize(
    ("path", "query", "status", "message"),
    [
        ("/api/panel/summary", {"project": "acme", "from": "x", "to": "y"}, 400, "from:"),
        ("/api/panel/summary", {"from": PERIOD["from"], "to": PERIOD["to"]}, 400, "project"),
        ("/api/panel/nope", {}, 404, "no panel"),
        ("/static/../server.py", {}, 404, "not found"),
        ("/static/vendor/../../server.py", {}, 404, "not found"),
        ("/elsewhere", {}, 404, "not found"),
    ],
)
def test_refusals_are_json_with_a_reason(
    api: Callable[..., Any], path: str, query: dict[str, str], status: int, message: str
) -> None:
    with pytest.raises(HTTPError) as err:
        api(path, **query)
    assert err.value.code == status
    assert message in json.load(err.value)["error"]


def test_the_page_and_chart_js_are_served_locally(api: Callable[..., Any]) -> None:
    base = api.url  # type: ignore[attr-defined]
    with urlopen(base, timeout=10) as resp:
        page = resp.read().decode()
        assert resp.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert '<script src="/static/vendor/chart.umd.min.js"' in page
    assert "http://" not in page and "https://" not in page  # no CDN: works offline
    with urlopen(base + "static/vendor/chart.umd.min.js", timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/javascript")
        assert b"Chart.js v4" in resp.read(200)


def test_rules_panels_say_when_their_tables_are_missing(
    api: Callable[..., Any], clickhouse: Any, database: str
) -> None:
    for table in ("outcomes", "seat_counts"):  # a database written before the rule stage
        clickhouse.command(f"DROP TABLE {database}.{table} SYNC")
    for panel, table in (("outcomes", "outcomes"), ("seats", "seat_counts"),
                         ("cost_per_outcome", "outcomes")):  # fmt: skip
        body = api(f"/api/panel/{panel}", project="acme", **PERIOD)
        assert body["status"] == "unavailable"
        assert f"table {table} is not present" in body["note"]


def test_rules_panels_read_outcomes_and_seats(
    api: Callable[..., Any], clickhouse: Any, database: str
) -> None:
    # the real tables (sinks/clickhouse/ddl.py), created by the sink's ensure_schema
    clickhouse.insert(
        f"{database}.outcomes",
        [("acme", "o1", "invoice", "invoice", "t1", 2.0, T0, 0, 1),
         ("acme", "o2", "invoice", "invoice", "t1", 2.0, T0, 0, 1),
         ("acme", "o3", "invoice", "invoice", "t2", 2.0, T0, 0, 1),
         ("acme", "o3", "invoice", "invoice", "t2", 2.0, T0, 0, 2),
         ("acme", "o4", "invoice", "invoice", "t2", 2.0, T0, 0, 1),
         ("acme", "o4", "invoice", "invoice", "t2", 2.0, T0, 1, 2)],  # retracted later
        column_names=["project", "outcome_id", "rule_id", "rule_name", "trace_id", "value",
                      "timestamp", "retracted", "version"],
    )  # fmt: skip
    clickhouse.insert(
        f"{database}.seat_counts",
        [("acme", "active", "active", "day", T0.date(), 2, T0),
         ("acme", "active", "active", "month", T0.date(), 5, T0)],
        column_names=["project", "rule_id", "rule_name", "period", "period_start", "seats",
                      "computed_at"],
    )  # fmt: skip
    outcomes = rows(api("/api/panel/outcomes", project="acme", **PERIOD), "rule")
    assert outcomes == {"invoice": {"rule": "invoice", "outcomes": 3, "value": 6.0}}
    per_outcome = rows(api("/api/panel/cost_per_outcome", project="acme", **PERIOD), "rule")
    # t1 (cost 0 + 0.25 + 0.5) and t2 (0.75 .. 1.25): each trajectory's cost counted once
    assert per_outcome["invoice"]["cost_usd"] == pytest.approx(3.75)
    assert per_outcome["invoice"]["cost_per_outcome"] == pytest.approx(1.25)
    seats = api("/api/panel/seats", project="acme", **PERIOD)["table"]["rows"]
    assert [(s["period"], s["seats"]) for s in seats] == [("day", 2), ("month", 5)]
    clickhouse.command(f"ALTER TABLE {database}.seat_counts DROP COLUMN seats")
    body = api("/api/panel/seats", project="acme", **PERIOD)
    assert body["status"] == "unavailable" and "lacks column(s) seats" in body["note"]


def test_an_empty_database_has_no_projects(
    clickhouse: Any, serve_dashboard: Callable[[Any, str], DashboardServer]
) -> None:
    server = serve_dashboard(clickhouse, f"none_{uuid.uuid4().hex[:8]}")
    with urlopen(server.url + "api/projects", timeout=10) as resp:
        assert json.load(resp)["projects"] == []


@pytest.mark.parametrize("bucket", list(BUCKETS))
def test_bucket_starts_match_clickhouse(clickhouse: Any, bucket: str) -> None:
    from meterline.dashboard.filters import Filters

    times = [T0 + timedelta(hours=h, minutes=7 * h, seconds=13) for h in range(0, 2000, 97)]
    f = Filters(project="p", start=T0, end=T0 + timedelta(days=1), bucket=bucket)
    sql = "SELECT " + ", ".join(
        f.bucket_sql(f"toDateTime64('{t:%Y-%m-%d %H:%M:%S}', 6, 'UTC')") for t in times
    )
    got = clickhouse.query(sql).result_rows[0]
    assert [g.replace(tzinfo=UTC) if g.tzinfo is None else g for g in got] == [
        floor(t, bucket) for t in times
    ]


def test_pricing_panel_lists_unpriced_models_and_the_book(
    clickhouse: Any, database: str, api: Callable[..., Any]
) -> None:
    from meterline.schemas.derived import Pricing

    def priced(i: int, model: str, status: str) -> EnrichedEvent:
        ev = ActionEvent(
            project="priced", event_id=f"p-{i}", kind=ActionKind.LLM_CALL, name="chat",
            model=model, provider="acme", input_tokens=100, output_tokens=7,
            timestamp=T0 + timedelta(minutes=i),
        )  # fmt: skip
        computed = 0.01 if status == "priced" else None
        pricing = Pricing(
            computed_cost_usd=computed, billed_cost_usd=computed or 0.0,
            cost_source="computed" if computed else "none", price_status=status,  # type: ignore[arg-type]
            price_book="genai-prices@0.2.5+cp7",
        )  # fmt: skip
        return EnrichedEvent(event=ev, version=1, pricing=pricing)

    rows_ = [priced(i, "known", "priced") for i in range(2)]
    rows_ += [priced(10 + i, "mystery-9", "unpriced") for i in range(3)]
    ClickHouseWriter(clickhouse, database).insert("events", [event_row(e) for e in rows_])
    panel = api("/api/panel/pricing", project="priced", **PERIOD)
    assert panel["table"]["rows"] == [
        {"provider": "acme", "model": "mystery-9", "status": "unpriced", "calls": 3,
         "input_tokens": 300, "output_tokens": 21},
    ]  # fmt: skip
    assert "genai-prices@0.2.5+cp7 (5 calls)" in panel["note"]
    totals = {d["label"]: sum(d["data"]) for d in panel["chart"]["datasets"]}
    assert totals == {"priced": 2, "unpriced": 3}

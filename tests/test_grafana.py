"""Grafana in docker-compose.yml: its service, provisioning files and dashboard JSON.

Checked by parsing (no Docker engine on the CI machines), and by running every query of the
dashboard JSON against chDB with Grafana's macros expanded, so a renamed table or column
fails here rather than in a team's Grafana.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

import pytest
import yaml

from meterline.dashboard.queries import REQUIRED_COLUMNS
from meterline.schemas import ActionEvent, ActionKind
from meterline.schemas.derived import EnrichedEvent
from meterline.sinks.clickhouse.ddl import TABLES
from meterline.sinks.clickhouse.rows import event_row
from meterline.sinks.clickhouse.writer import ClickHouseWriter
from tests.test_docker_compose import (
    GRAFANA_DIR,
    ROOT,
    SECRETS,
    compose,
    env,
    interpolate,
    services,
    variables,
)

__all__ = ["compose", "services"]  # fixtures shared with test_docker_compose

DATASOURCE_FILE = GRAFANA_DIR / "provisioning" / "datasources" / "clickhouse.yaml"
PROVIDER_FILE = GRAFANA_DIR / "provisioning" / "dashboards" / "meterline.yaml"
DASHBOARD_FILE = GRAFANA_DIR / "dashboards" / "meterline.json"
PLUGIN = "grafana-clickhouse-datasource"


@pytest.fixture(scope="module")
def grafana(services: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return services["grafana"]


@pytest.fixture(scope="module")
def datasource() -> dict[str, Any]:
    (ds,) = yaml.safe_load(DATASOURCE_FILE.read_text())["datasources"]
    assert isinstance(ds, dict)
    return ds


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD_FILE.read_text())
    assert isinstance(data, dict)
    return data


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """container path -> host path (relative to the compose file) of bind mounts."""
    out = {}
    for spec in service["volumes"]:
        host, container, *_ = spec.split(":")
        out[container] = host
    return out


def test_grafana_uses_the_official_oss_image_pinned_and_installs_the_clickhouse_plugin(
    grafana: dict[str, Any],
) -> None:
    name, _, tag = grafana["image"].partition(":")
    assert name == "grafana/grafana-oss"
    assert re.fullmatch(r"1[2-9]\.\d+\.\d+", tag), f"{grafana['image']}: pin a release >= 12.1"
    plugins = env(grafana)["GF_PLUGINS_PREINSTALL_SYNC"].split(",")
    assert any(p.split("@")[0] == PLUGIN for p in plugins)


def test_grafana_has_no_default_login(grafana: dict[str, Any]) -> None:
    values = env(grafana)
    assert values["GF_SECURITY_ADMIN_PASSWORD"] == SECRETS["GRAFANA_ADMIN_PASSWORD"]
    assert values["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert values["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert grafana["ports"] == ["127.0.0.1:3000:3000"]


def test_provisioning_files_are_mounted_where_grafana_reads_them(
    compose: dict[str, Any], grafana: dict[str, Any]
) -> None:
    bound = mounts(grafana)
    assert (ROOT / bound["/etc/grafana/provisioning/datasources"]) == DATASOURCE_FILE.parent
    assert (ROOT / bound["/etc/grafana/provisioning/dashboards"]) == PROVIDER_FILE.parent
    assert bound["/var/lib/grafana"] in compose["volumes"]  # a named volume: state survives
    (provider,) = yaml.safe_load(PROVIDER_FILE.read_text())["providers"]
    dashboards_dir = provider["options"]["path"]
    assert (ROOT / bound[dashboards_dir]) == DASHBOARD_FILE.parent
    home = PurePosixPath(env(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert (ROOT / bound[str(home.parent)] / home.name) == DASHBOARD_FILE


def test_the_datasource_reaches_clickhouse_with_the_servers_credentials(
    services: dict[str, dict[str, Any]], datasource: dict[str, Any]
) -> None:
    assert datasource["type"] == PLUGIN
    data, secure = datasource["jsonData"], datasource["secureJsonData"]
    assert (data["host"], data["port"], data["protocol"]) == ("clickhouse", 8123, "http")
    assert "127.0.0.1:8123:8123" in services["clickhouse"]["ports"]  # the server's HTTP port
    for text in (data["username"], secure["password"], data["defaultDatabase"]):
        assert list(variables(text)), f"{text!r}: read it from the environment"
    for extra in ({}, {"CLICKHOUSE_USER": "ops", "METERLINE_DATABASE": "billing"}):
        grafana_env = env(services["grafana"], extra)
        server = env(services["clickhouse"], extra)
        assert interpolate(data["username"], grafana_env) == server["CLICKHOUSE_USER"]
        assert interpolate(secure["password"], grafana_env) == server["CLICKHOUSE_PASSWORD"]
        database = interpolate(data["defaultDatabase"], grafana_env)
        assert database == env(services["sink"], extra)["METERLINE_DATABASE"]


def test_every_panel_queries_the_provisioned_datasource(
    dashboard: dict[str, Any], datasource: dict[str, Any]
) -> None:
    titles = {p["title"] for p in dashboard["panels"]}
    for wanted in (
        "LLM cost per user", "LLM cost per model", "Action latency and errors",
        "Action error rate", "Dead letters (all projects)", "Outcomes per rule",
        "Seats per period", "Cost per outcome",
    ):  # fmt: skip
        assert wanted in titles
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == datasource["uid"]
            assert target["rawSql"].strip(), panel["title"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def test_queries_name_only_meterline_tables(dashboard: dict[str, Any]) -> None:
    known = set(TABLES) | set(REQUIRED_COLUMNS)
    for sql in queries(dashboard):
        named = set(re.findall(r"\b(?:FROM|JOIN)\s+([a-z_]+)\b", sql))
        assert named and named <= known, (named - known, sql)


def queries(dashboard: dict[str, Any]) -> list[str]:
    found = [t["rawSql"] for p in dashboard["panels"] for t in p["targets"]]
    return found + [v["query"] for v in dashboard["templating"]["list"]]


def expand(sql: str, database: str) -> str:
    """``sql`` as the ClickHouse plugin would send it, with its tables in ``database``."""
    frm, to = "toDateTime64('2026-11-01 00:00:00', 3)", "toDateTime64('2026-11-02 00:00:00', 3)"
    sql = re.sub(r"\$__timeFilter\((\w+)\)", rf"\1 >= {frm} AND \1 <= {to}", sql)
    sql = re.sub(
        r"\$__timeInterval\((\w+)\)", r"toStartOfInterval(toDateTime(\1), INTERVAL 60 second)", sql
    )
    sql = sql.replace("$__fromTime", frm).replace("$__toTime", to)
    sql = sql.replace("${project:singlequote}", "'acme'")
    assert "$" not in sql, f"unexpanded macro or variable in {sql}"
    return re.sub(r"\b(FROM|JOIN)\s+([a-z_]+)\b", rf"\1 {database}.\2", sql)


@pytest.mark.integration
def test_every_query_runs_on_meterlines_tables(clickhouse: Any, dashboard: dict[str, Any]) -> None:
    db = f"grafana_{uuid.uuid4().hex[:10]}"
    writer = ClickHouseWriter(clickhouse, db)
    writer.ensure_schema()
    # every table the queries read, outcomes and seat_counts included, as the sink creates it
    t = datetime(2026, 11, 1, 12, tzinfo=UTC)
    writer.insert(
        "events",
        [
            event_row(EnrichedEvent(event=ActionEvent(
                project="acme", event_id=f"e{i}", name="chat", kind=ActionKind.LLM_CALL,
                user_id="ann", model="gpt-4o", cost_usd=0.5, duration_ms=10.0, timestamp=t,
            )))
            for i in range(4)
        ],
    )  # fmt: skip
    try:
        for sql in queries(dashboard):
            clickhouse.query(expand(sql, db))
        overview = next(p for p in dashboard["panels"] if p["title"] == "Overview")
        result = clickhouse.query(expand(overview["targets"][0]["rawSql"], db))
        row = dict(zip(result.column_names, result.result_rows[0], strict=True))
        assert (row["events"], row["llm_calls"], row["llm_cost_usd"]) == (4, 4, 2.0)
    finally:
        clickhouse.command(f"DROP DATABASE IF EXISTS {db}")

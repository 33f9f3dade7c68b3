"""``meterline report``/``sql``/``backfill`` through the query endpoint of a running ``up``.

chDB opens one data path per process (the session engine here), so the commands run
in-process against a :class:`QueryServer` on the session engine -- the path they take
while ``meterline up`` holds chDB. A subprocess checks the error when nothing serves it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meterline.billing.endpoint import FILE_NAME, RemoteClient, find
from meterline.billing.errors import QueryFailed
from meterline.billing.services import BillingServices
from meterline.cli import main
from meterline.settings import Settings
from meterline.sinks.clickhouse.writer import ClickHouseWriter
from tests.meterline.billing.test_backfill import EVENTS, store
from tests.stream_processors.rules.fixtures import EXAMPLE


@pytest.fixture
def served(writer: ClickHouseWriter, tmp_path: Path) -> Iterator[BillingServices]:
    settings = Settings(data_dir=tmp_path, database=writer.database)
    services = BillingServices(settings, writer).start()  # no control plane: endpoint only
    yield services
    services.stop()
    assert not (tmp_path / FILE_NAME).exists()


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_endpoint_needs_the_token_and_is_read_only(
    served: BillingServices, tmp_path: Path, writer: ClickHouseWriter
) -> None:
    assert served.server is not None
    info = json.loads((tmp_path / FILE_NAME).read_text())
    assert (tmp_path / FILE_NAME).stat().st_mode & 0o077 == 0
    client = find(tmp_path)
    assert client is not None
    assert client.query("SELECT 1 + %(x)s AS two", {"x": 1}).named_results() == [{"two": 2}]
    with pytest.raises(QueryFailed, match="bad token"):
        RemoteClient(info["url"], "wrong").query("SELECT 1")
    for sql in (f"DROP TABLE {writer.database}.events", "SELECT 1; DROP TABLE x",
                "SELECT 1 INTO OUTFILE '/tmp/x'"):  # fmt: skip
        with pytest.raises(QueryFailed, match="one reading statement"):
            client.query(sql)
    writer.insert("display_names", [("a", "b", 1)])  # the shared session can still write


def test_backfill_report_and_sql_while_up_holds_chdb(
    served: BillingServices, tmp_path: Path, writer: ClickHouseWriter,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("METERLINE_DATABASE", writer.database)
    store(writer, EVENTS)
    common = ["--data-dir", str(tmp_path)]
    code, out, err = run(capsys, "backfill", "--from", "2026-03-10", "--to", "2026-03-10",
                         "--control-plane", str(EXAMPLE), *common)  # fmt: skip
    assert code == 0, err
    assert "5 outcomes, 0 retracted" in out
    code, out, err = run(capsys, "report", "--from", "2026-03-01", "--to", "2026-03-31", *common)
    assert code == 0, err
    for title in ("Usage per user and month", "Outcomes per rule and month", "Seats per period",
                  "Cost per outcome", "Latency and errors per action"):  # fmt: skip
        assert title in out
    assert "invoice_processed" in out and "large_invoice" in out and "active_30d" in out
    code, out, err = run(
        capsys, "sql", f"SELECT rule_id, count() AS n FROM {writer.database}.outcomes FINAL "
        "GROUP BY rule_id ORDER BY rule_id", *common,
    )  # fmt: skip
    assert code == 0, err
    assert out.splitlines()[0].split() == ["rule_id", "n"]
    assert "(4 rows)" in out
    code, out, err = run(capsys, "sql", "SELECT nonsense(", *common)
    assert code == 1 and "Syntax error" in err


def test_backfill_without_a_control_plane_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("METERLINE_CONTROL_PLANE", raising=False)
    code, _, err = run(capsys, "backfill", "--from", "2026-01-01", "--to", "2026-01-02",
                       "--data-dir", str(tmp_path))  # fmt: skip
    assert code == 2 and "--control-plane" in err


def test_sql_on_a_chdb_path_held_by_another_process_is_a_clear_error(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from meterline.sinks import connect
            client = connect("chdb://{tmp_path / 'clickhouse'}")  # held while alive
            client.command("SELECT 1")
            print("ready", flush=True)
            time.sleep(60)
        """)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        done = subprocess.run(
            [sys.executable, "-m", "meterline.cli", "sql", "SELECT 1",
             "--data-dir", str(tmp_path)],
            capture_output=True, text=True, timeout=120, env=_env(),
        )  # fmt: skip
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 1
    assert "chDB allows one process per data path" in done.stderr


def _env() -> dict[str, Any]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("METERLINE_")}

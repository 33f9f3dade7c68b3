"""The ``meterline`` command line, run as users run it: a real process, embedded services."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.request import urlopen

import pytest

pytestmark = pytest.mark.integration


def meterline(*args: str, data_dir: Path) -> tuple[list[str], dict[str, str]]:
    """The command and an environment without METERLINE_* (the embedded default)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("METERLINE_")}
    cmd = [sys.executable, "-m", "meterline.cli", *args, "--data-dir", str(data_dir)]
    return cmd, env


def test_demo_reports_counts_that_match_and_exits_zero(tmp_path: Path) -> None:
    cmd, env = meterline("demo", "--events", "600", data_dir=tmp_path / "ml")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "OK: ClickHouse holds 600 unique events (600 joined)" in done.stdout
    assert "duplicates dropped" in done.stdout and "cost usd" in done.stdout


def test_up_runs_until_interrupted_then_stops_every_child(tmp_path: Path) -> None:
    cmd, env = meterline("up", "--dashboard-port", "0", data_dir=tmp_path / "ml")
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    lines: list[str] = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if "Ctrl-C to stop" in line:
            break
    else:
        proc.kill()
        pytest.fail("meterline up did not come up:\n" + "".join(lines))
    assert "kafka 127.0.0.1:" in "".join(lines)
    # the dashboard is served from the same process, on the pipeline's chDB
    (url,) = [line.split()[1] for line in lines if line.startswith("Dashboard: ")]
    with urlopen(url + "api/projects", timeout=10) as resp:
        assert json.load(resp) == {"database": "meterline", "projects": []}
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
    child_pids = [int(p) for p in children.stdout.split()]
    assert len(child_pids) >= 2  # the Tansu broker and a processor worker
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 0
    for pid in child_pids:  # reaped: gone, not orphaned
        assert not Path(f"/proc/{pid}").exists(), f"child {pid} outlived meterline up"


def test_report_sql_and_backfill_work_while_up_holds_chdb(tmp_path: Path) -> None:
    """chDB admits one process per data path: the commands go through up's query endpoint."""
    example = Path(__file__).parents[2] / "docs" / "examples" / "control-plane.yaml"
    data = tmp_path / "ml"
    cmd, env = meterline("up", "--control-plane", str(example), data_dir=data)
    env["METERLINE_RECOMPUTE_INTERVAL_S"] = "1"
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "Ctrl-C to stop" not in proc.stdout.readline():
            pass

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            c, e = meterline(*args, data_dir=data)
            return subprocess.run(c, env=e, capture_output=True, text=True, timeout=120)

        sql = run("sql", "SELECT count() AS n FROM meterline.display_names")
        assert sql.returncode == 0, sql.stderr
        assert "(1 row)" in sql.stdout
        report = run("report", "--control-plane", str(example))
        assert report.returncode == 0, report.stderr
        assert "Seats per period" in report.stdout
        back = run("backfill", "--from", "2026-11-01", "--to", "2026-11-02",
                   "--control-plane", str(example))  # fmt: skip
        assert back.returncode == 0, back.stderr
        assert "0 outcomes, 0 retracted" in back.stdout
        refused = run("sql", "DROP DATABASE meterline")
        assert refused.returncode == 1 and "one reading statement" in refused.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    assert not (data / "query-endpoint.json").exists()


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_dashboard_serves_a_chdb_path_alone_until_stopped(tmp_path: Path, stop: int) -> None:
    url = f"chdb://{tmp_path / 'ch'}"
    cmd, env = meterline("dashboard", "--port", "0", "--clickhouse-url", url, data_dir=tmp_path)
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    try:
        assert first.startswith("meterline dashboard: http://127.0.0.1:"), first
        with urlopen(first.split()[2] + "api/projects", timeout=10) as resp:
            assert json.load(resp)["projects"] == []  # no tables yet: an empty list, no error
    finally:
        proc.send_signal(stop)
        assert proc.wait(timeout=30) == 0, proc.stdout.read()


def test_up_says_which_flag_to_use_when_the_dashboard_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        cmd, env = meterline("up", "--dashboard-port", port, data_dir=tmp_path / "ml")
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"cannot serve the dashboard on 127.0.0.1:{port}" in done.stderr
    assert "--dashboard-port N (0: any free port) or --no-dashboard" in done.stderr

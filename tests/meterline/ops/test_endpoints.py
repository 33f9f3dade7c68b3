"""The HTTP endpoints of a process: /metrics, /healthz, /readyz, and the endpoint file."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

from meterline.ops.endpoints import EndpointServer, new_registry, read_endpoints
from meterline.ops.health import Health, group_check


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_metrics_health_and_readiness_over_http(tmp_path: Path) -> None:
    broken: list[str] = []
    health = Health(live=[lambda: None], ready=[lambda: broken[0] if broken else None], cache_s=0)
    server = EndpointServer(
        new_registry("unit"), health, name="unit", run_dir=tmp_path / "run"
    ).start()
    try:
        status, text = get(server.url + "/metrics")
        assert status == 200 and 'meterline_up{component="unit"} 1.0' in text
        assert get(server.url + "/healthz") == (200, '{"status": "ok", "problems": []}\n')
        assert get(server.url + "/readyz")[0] == 200
        broken.append("kafka 127.0.0.1:1: unreachable")
        status, body = get(server.url + "/readyz")
        assert status == 503
        assert json.loads(body) == {
            "status": "fail",
            "problems": ["kafka 127.0.0.1:1: unreachable"],
        }
        assert get(server.url + "/healthz")[0] == 200  # not ready is not dead
        assert get(server.url + "/nope")[0] == 404
        [entry] = read_endpoints(tmp_path / "run")
        assert entry == {"name": "unit", "pid": os.getpid(), "url": server.url}
    finally:
        server.stop()
    assert read_endpoints(tmp_path / "run") == []


def test_a_check_that_raises_is_a_problem_not_a_crash() -> None:
    def kafka() -> str | None:
        raise RuntimeError("boom")

    assert Health(ready=[kafka]).readiness() == ["kafka: RuntimeError: boom"]


def test_endpoint_files_of_dead_processes_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "gone.json").write_text(json.dumps({"name": "gone", "pid": 2**22 + 1, "url": "x"}))
    assert read_endpoints(tmp_path) == []


def test_problems_never_show_a_password() -> None:
    def clickhouse() -> str | None:
        return "insert failed on http://meterline:s3cret@ch:8123/"

    assert Health(ready=[clickhouse]).readiness() == [
        "insert failed on http://meterline:***@ch:8123/"
    ]


class _Tables:
    """A Faust table manager before and after it built its Recovery service."""

    def __init__(self) -> None:
        self._recovery: object | None = None

    @property
    def recovery(self) -> object:  # Faust builds the service here on first use
        raise AssertionError("readiness must not build Faust's Recovery service")


def test_a_worker_is_ready_only_in_its_group_with_its_state_recovered() -> None:
    completed = SimpleNamespace(is_set=lambda: False)
    tables = _Tables()
    app = SimpleNamespace(tables=tables, rebalancing=False)
    check = group_check(app)
    # before the table manager started recovery (and without building it from this thread)
    assert check() == "consumer group: joining, or table state of the first assignment recovering"
    tables._recovery = SimpleNamespace(completed=completed)
    assert check() is not None  # recovering the first assignment
    completed.is_set = lambda: True
    assert check() is None
    app.rebalancing = True
    assert check() == "consumer group: rebalancing, table state recovering"

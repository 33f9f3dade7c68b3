"""A Node.js agent on the official OpenTelemetry JS SDK, through the gateway's /v1/traces.

``examples/node-otlp/agent.mjs`` (``@opentelemetry/sdk-trace-node`` with the OTLP/HTTP
protobuf exporter, versions pinned in its package-lock.json) runs under ``node`` against a
gateway on real Tansu + chDB; ClickHouse shows its chat span as an ``llm_call`` with model and
tokens, its tool span as a ``tool_call``, its agent span as the trajectory, all with its user.

The example's dependencies are installed by ``npm ci`` into a cache directory outside the
repository (``$METERLINE_NODE_CACHE``, else ``$XDG_CACHE_HOME/meterline`` or
``~/.cache/meterline``), keyed by the hash of package.json and package-lock.json: the first run
needs the npm registry (or npm's own cache), later runs install nothing. Without ``node`` and
``npm`` the test fails and says so (``make node`` installs them from Debian).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from meterline.producers.gateway import KeyStore
from tests.fixtures import wait_until

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "node-otlp"
MANIFESTS = ("package.json", "package-lock.json", ".npmrc")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` not found: this test runs examples/node-otlp under Node.js "
                    f"(>= 18.19 or >= 20.6) with npm; install them (`make node`)")  # fmt: skip
    return path


def _cache_root() -> Path:
    if "METERLINE_NODE_CACHE" in os.environ:
        return Path(os.environ["METERLINE_NODE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "meterline"


def installed_example() -> Path:
    """The directory holding the example's ``node_modules``, installed once per lock file.

    Idempotent and safe against a concurrent run: ``npm ci`` fills a private directory that
    is renamed into place only when complete, and a complete one is never touched again."""
    digest = hashlib.sha256(b"".join((EXAMPLE / m).read_bytes() for m in MANIFESTS))
    target = _cache_root() / f"node-otlp-{digest.hexdigest()[:16]}"
    if (target / "node_modules").is_dir():
        return target
    npm = _tool("npm")
    work = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for name in MANIFESTS:
        shutil.copy2(EXAMPLE / name, work / name)
    done = subprocess.run(
        [npm, "ci", "--prefer-offline", "--no-audit", "--no-fund"],
        cwd=work, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if done.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        pytest.fail(f"npm ci for examples/node-otlp failed ({done.returncode}):\n"
                    f"{done.stdout}\n{done.stderr}")  # fmt: skip
    try:
        work.rename(target)
    except OSError:  # another run installed it first
        shutil.rmtree(work, ignore_errors=True)
    return target


def run_agent(where: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``node agent.mjs`` (the repository's) in ``where``, with the cached install's packages."""
    installed = installed_example()
    where.mkdir()
    shutil.copy2(EXAMPLE / "agent.mjs", where / "agent.mjs")
    (where / "package.json").symlink_to(installed / "package.json")
    (where / "node_modules").symlink_to(installed / "node_modules")
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("OTEL_", "METERLINE_"))}  # fmt: skip
    return subprocess.run([_tool("node"), "agent.mjs"], cwd=where, env=clean | env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_node_sdk_spans_land_with_model_tokens_tool_trajectory_and_user(
    gateway_factory: Any, keystore: KeyStore, tmp_path: Path
) -> None:
    pipeline, gw = gateway_factory()
    _, key = keystore.create("acme", "node")
    done = run_agent(tmp_path / "ok", {
        "OTEL_EXPORTER_OTLP_ENDPOINT": gw.url,
        "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer%20{key}",
    })  # fmt: skip
    assert done.returncode == 0, (done.stdout, done.stderr)
    trace_id = json.loads(done.stdout)["trace_id"]
    db = pipeline.settings.database

    def landed() -> list[tuple[Any, ...]]:
        return [tuple(r) for r in pipeline.clickhouse.query(
            f"SELECT kind, name, model, provider, input_tokens, output_tokens, cached_tokens,"
            f" status, user_id, session_id, agent_id, project, joined, source"
            f" FROM {db}.events FINAL WHERE trace_id = %(t)s ORDER BY kind",
            parameters={"t": trace_id},
        ).result_rows]  # fmt: skip

    assert wait_until(lambda: [r[12] for r in landed()] == [1, 1], 30, pipeline=pipeline), landed()
    assert landed() == [
        ("llm_call", "chat gpt-4o", "gpt-4o-2024-08-06", "openai", 1200, 80, 300, "success",
         "u-node", "conv-node-1", "support-node-1", "acme", 1, "otlp"),
        ("tool_call", "lookup_order", "", "", 0, 0, 0, "success",
         "u-node", "conv-node-1", "support-node-1", "acme", 1, "otlp"),
    ]  # fmt: skip
    traj = pipeline.clickhouse.query(
        f"SELECT project, user_id, agent_id, status, started_at <= ended_at"
        f" FROM {db}.trajectories FINAL WHERE trace_id = %(t)s", parameters={"t": trace_id},
    ).result_rows  # fmt: skip
    assert [tuple(r) for r in traj] == [("acme", "u-node", "support-node-1", "success", True)]

    # the explicit form, with a key the gateway does not know: node says so and exits 1
    refused = run_agent(tmp_path / "bad", {"METERLINE_ENDPOINT": gw.url,
                                           "METERLINE_API_KEY": "mlk_unknown"})  # fmt: skip
    assert refused.returncode == 1, (refused.stdout, refused.stderr)
    assert "export failed: Unauthorized" in refused.stderr

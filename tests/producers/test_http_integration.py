"""The SDK's HTTP transport end to end: SDK -> a real ``meterline gateway`` process -> Tansu ->
processor -> chDB, the same test as the Kafka transport's (test_sdk_integration.py), and a
delivery through connection errors, 503 (raw topics not there yet) and 429 (rate limit) with
exact counts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from meterline.embedded.runtime import Pipeline
from meterline.producers import HttpConfig, MeterlineClient
from meterline.producers.gateway import KeyStore
from meterline.schemas import ActionEvent
from meterline.settings import Settings
from tests.fixtures import wait_until
from tests.producers.test_sdk_integration import (
    PROJECT,
    _emit_from_every_api,
    assert_landed_and_no_secret_left,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def gateway_process(
    settings: Settings, tmp_path: Path
) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """``start(port, *flags)``: ``meterline gateway`` as its own process, on the test's
    settings (broker, topic prefix) and keys file."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(port: int, *flags: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, **settings.to_env(), "PYTHONPATH": str(ROOT)}
        with open(tmp_path / "gateway.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "meterline.cli", "gateway", "--port", str(port),
                 "--kafka-bootstrap", str(settings.kafka_bootstrap),
                 "--keys-file", str(tmp_path / "keys.json"), *flags],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log,
            )  # fmt: skip
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _log(tmp_path: Path) -> str:
    path = tmp_path / "gateway.log"
    return path.read_text()[-3000:] if path.exists() else ""


def test_events_from_all_five_apis_through_the_gateway_land_in_clickhouse(
    pipeline_factory: Any, gateway_process: Any, tmp_path: Path
) -> None:
    p: Pipeline = pipeline_factory()
    _, key = KeyStore(tmp_path / "keys.json").create(PROJECT, "sdk")
    port = _free_port()
    gateway_process(port)
    client = MeterlineClient.from_http(f"http://127.0.0.1:{port}", key, project=PROJECT,
                                       flush_at_exit=False)  # fmt: skip
    trace_id = uuid.uuid4().hex
    want = _emit_from_every_api(client, trace_id)  # upload_trace waits for the gateway's 200
    assert client.close(20) == 0, _log(tmp_path)
    assert client.stats.failed == client.stats.dropped == client.stats.build_errors == 0
    assert client.stats.delivered == sum(want.values()) + 1  # and the trajectory record
    assert_landed_and_no_secret_left(p, trace_id, want)


def test_retries_through_connection_errors_503_and_429_deliver_every_record_once(
    pipeline_factory: Any, gateway_process: Any, tmp_path: Path
) -> None:
    n, project = 1_000, "it-http"
    _, key = KeyStore(tmp_path / "keys.json").create(project, "retry")
    port = _free_port()
    client = MeterlineClient.from_http(
        f"http://127.0.0.1:{port}", key, project=project, flush_at_exit=False,
        http=HttpConfig(max_records=50, backoff_s=0.1, max_backoff_s=0.5),
    )  # fmt: skip
    stats = client.sink.stats  # type: ignore[attr-defined]
    for i in range(n):
        assert client.record(ActionEvent(event_id=f"http-{i}", trace_id=f"tr-{i % 20}",
                                         name="retried", input_tokens=i))  # fmt: skip

    def retried(reason: str) -> bool:
        return bool(stats.retried_by.get(reason, 0) >= 1)

    # 1. nothing listens yet: connection errors, retried with backoff
    assert wait_until(lambda: retried("connection"), 10), stats
    # 2. the gateway is up but the raw topics are not: 503 with Retry-After
    gateway_process(port, "--rate-limit", "4", "--burst", "4")
    assert wait_until(lambda: retried("503"), 30), (stats, _log(tmp_path))
    assert stats.delivered == 0
    # 3. the pipeline creates the topics: 200s, and 429s past the key's 4 requests/s
    p: Pipeline = pipeline_factory()
    assert client.flush(120) == 0, (stats, _log(tmp_path))
    assert retried("429"), stats
    assert client.stats.delivered == n and client.stats.failed == 0
    assert client.stats.dropped == client.stats.send_errors == client.stats.spooled == 0
    assert client.close(5) == 0

    ch, db = p.clickhouse, p.settings.database

    def counts() -> tuple[int, int, int]:
        row = ch.query(f"SELECT count(), uniqExact(event_id), sum(input_tokens) "
                       f"FROM {db}.events FINAL WHERE project = '{project}'").result_rows[0]
        return int(row[0]), int(row[1]), int(row[2])

    want = (n, n, sum(range(n)))
    assert wait_until(lambda: counts() == want, 90, pipeline=p), counts()
    time.sleep(2)
    assert counts() == want  # exact: nothing arrives twice

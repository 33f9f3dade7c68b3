"""The SDK's HTTP transport (``producers/http/``) against a scripted stand-in for the
gateway: batching, gzip, project stamping, retries honouring Retry-After, refusals, 401, 413,
never blocking the agent, give-up at close into the spool, configuration."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError

import meterline.producers
from meterline.producers import (
    AgentSightTracker,
    HttpConfig,
    HttpSink,
    MeterlineClient,
    track_action,
)
from meterline.producers.config import init
from meterline.producers.errors import NotConfigured
from meterline.producers.http.wire import retry_after
from meterline.producers.ids import stable_id
from meterline.schemas import ActionEvent, RawRecord, TelemetryEvent
from tests.producers.http_fixtures import FakeGateway, start_fake_gateway

ROOT = Path(__file__).resolve().parents[2]
KEY = "mlk_abc123_s3cretpart"
FAST = HttpConfig(linger_s=0.01, backoff_s=0.05, max_backoff_s=0.2)


def _client(gw: FakeGateway | str, config: HttpConfig = FAST, **kw: Any) -> MeterlineClient:
    url = gw if isinstance(gw, str) else gw.url
    kw.setdefault("flush_at_exit", False)
    return MeterlineClient.from_http(url, KEY, http=config, **kw)


def _ev(i: int, **kw: Any) -> ActionEvent:
    return ActionEvent(event_id=f"e{i}", trace_id=f"t{i % 7}", name="step", **kw)


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_records_are_batched_gzip_posted_with_the_key_and_the_keys_project(
    fake_gateway: FakeGateway,
) -> None:
    c = _client(fake_gateway)
    for i in range(1_200):
        assert c.record(_ev(i))
    assert c.record(TelemetryEvent(event_id="tel", event_type="user.accept", project="acme"))
    assert c.flush(10) == 0
    assert sorted(fake_gateway.ids()) == sorted([f"e{i}" for i in range(1_200)] + ["tel"])
    reqs = fake_gateway.requests
    assert len(reqs) >= 3 and max(len(r["records"]) for r in reqs) <= 500
    first = reqs[0]
    assert first["path"] == "/v1/events"
    assert first["headers"]["Authorization"] == f"Bearer {KEY}"
    assert first["headers"]["Content-Encoding"] == "gzip"
    assert first["headers"]["Content-Type"] == "application/x-ndjson"
    by_id = {r["event_id"]: r for r in fake_gateway.received}
    assert "project" not in by_id["e1"]  # the default project: the gateway stamps the key's
    assert by_id["tel"]["project"] == "acme"
    assert c.stats.delivered == c.stats.sent == 1_201 and c.stats.failed == 0
    assert c.sink.stats.delivered == 1_201  # type: ignore[attr-defined]
    assert c.close(5) == 0


def test_a_client_project_is_sent_and_a_path_prefix_is_kept(fake_gateway: FakeGateway) -> None:
    c = _client(fake_gateway.url + "/meterline/", project="acme")
    c.record(_ev(1))
    assert c.flush(5) == 0
    assert fake_gateway.requests[0]["path"] == "/meterline/v1/events"
    assert fake_gateway.received[0]["project"] == "acme"
    c.close(1)


def test_429_and_503_are_retried_after_retry_after_and_delivered_once(
    fake_gateway: FakeGateway,
) -> None:
    fake_gateway.script = [(429, {"Retry-After": "1"}, None), (503, {"Retry-After": "1"}, None),
                           (502, {}, None)]  # fmt: skip
    c = _client(fake_gateway)
    t0 = time.monotonic()
    for i in range(10):
        c.record(_ev(i))
    assert c.flush(20) == 0
    assert time.monotonic() - t0 >= 1.9  # both Retry-After honoured
    assert sorted(fake_gateway.ids()) == sorted(f"e{i}" for i in range(10))
    stats = c.sink.stats  # type: ignore[attr-defined]
    assert stats.retried_by == {"429": 1, "503": 1, "502": 1} and stats.retries == 3
    assert stats.requests == 4
    assert c.stats.delivered == 10 and c.stats.failed == 0
    c.close(1)


def test_connection_errors_are_retried_until_the_gateway_is_up() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = _client(f"http://127.0.0.1:{port}")
    for i in range(5):
        c.record(_ev(i))
    deadline = time.monotonic() + 10
    while c.sink.stats.retried_by.get("connection", 0) < 2:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    gw = start_fake_gateway(port)
    try:
        assert c.flush(10) == 0
        assert sorted(gw.ids()) == [f"e{i}" for i in range(5)]
        assert c.stats.delivered == 5
    finally:
        c.close(1)
        gw.server.shutdown()
        gw.server.server_close()


def test_records_the_gateway_refuses_are_reported_with_the_reason_and_never_spooled(
    fake_gateway: FakeGateway, tmp_path: Path
) -> None:
    fake_gateway.refuse = lambda r: "project: 'globex' is not this API key's project 'acme'" \
        if r.get("project") == "globex" else None
    errors: list[str] = []
    reports: list[tuple[str, KafkaError | None]] = []

    def on_delivery(rec: RawRecord, err: KafkaError | None) -> None:
        reports.append((rec.event_id, err))  # type: ignore[union-attr]

    spool = tmp_path / "spool.jsonl"
    c = _client(fake_gateway, spool_path=spool, on_error=lambda m, e: errors.append(m),
                on_delivery=on_delivery)  # fmt: skip
    c.record(_ev(1))
    c.record(_ev(2, project="globex"))
    assert c.flush(5) == 0
    assert c.stats.delivered == 1 and c.stats.failed == 1 and c.stats.spooled == 0
    assert not spool.exists()
    assert len(errors) == 1 and "not this API key's project 'acme'" in errors[0]
    err = dict(reports)["e2"]
    assert err is not None and err.code() == KafkaError.INVALID_RECORD
    assert c.sink.stats.refused == 1  # type: ignore[attr-defined]
    c.close(1)


def test_401_fails_the_batch_at_once_into_the_spool(
    fake_gateway: FakeGateway, tmp_path: Path
) -> None:
    fake_gateway.script = [(401, {}, {"error": "unknown or revoked API key"})]
    spool = tmp_path / "spool.jsonl"
    c = _client(fake_gateway, spool_path=spool)
    for i in range(3):
        c.record(_ev(i))
    assert c.flush(5) == 0
    assert c.stats.spooled == 3 and c.stats.delivered == 0
    assert "401: unknown or revoked API key" in (c.sink.stats.last_error or "")  # type: ignore[attr-defined]
    assert len(spool.read_bytes().splitlines()) == 3
    assert len(fake_gateway.requests) == 1  # not retried
    c.close(1)


def test_413_splits_the_batch(fake_gateway: FakeGateway) -> None:
    fake_gateway.script = [(413, {}, None), (413, {}, None)]
    c = _client(fake_gateway, HttpConfig(linger_s=0.2, max_records=40))
    for i in range(40):
        c.record(_ev(i))
    assert c.flush(10) == 0
    assert sorted(fake_gateway.ids()) == sorted(f"e{i}" for i in range(40))
    assert [len(r["records"]) for r in fake_gateway.requests][:3] == [40, 20, 10]
    assert c.stats.delivered == 40
    c.close(1)


def test_a_stalled_gateway_never_blocks_the_agent_and_close_spools_the_rest_in_time(
    fake_gateway: FakeGateway, tmp_path: Path
) -> None:
    fake_gateway.delay_s = 3.0  # every request hangs (the gateway waits for a broker)
    spool = tmp_path / "spool.jsonl"
    c = _client(fake_gateway, HttpConfig(linger_s=0.01, max_records=10),
                spool_path=spool, max_queue=100, shutdown_timeout_s=0.5)  # fmt: skip
    t0 = time.perf_counter()
    tracker = AgentSightTracker(c)
    results = [tracker.track_action(action_name="step", duration_ms=1)["status"]
               for _ in range(2_000)]  # fmt: skip
    assert time.perf_counter() - t0 < 2.0  # never waits for the gateway
    assert "error" in results  # the bounded queue dropped the overflow (counted)
    recorded = results.count("success")
    assert c.stats.dropped == 2_000 - recorded
    t0 = time.monotonic()
    lost = c.close()
    assert time.monotonic() - t0 < 8.0
    assert lost == c.stats.spooled > 0 and c.stats.failed == 0
    assert c.stats.delivered + c.stats.spooled + c.stats.send_errors == recorded
    assert len(spool.read_bytes().splitlines()) == c.stats.spooled


def test_a_dead_endpoint_fails_records_after_the_delivery_timeout() -> None:
    errors: list[str] = []
    c = _client(_dead_url(), HttpConfig(linger_s=0.01, backoff_s=0.05, delivery_timeout_s=0.5),
                on_error=lambda m, e: errors.append(m))  # fmt: skip
    for i in range(4):
        c.record(_ev(i))
    assert c.flush(5) == 0
    assert c.stats.failed == 4 and len(errors) == 4
    assert "not delivered to the gateway within 0.5s" in errors[0]
    assert "ConnectionRefusedError" in errors[0]
    c.close(1)


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert retry_after("3") == 3.0 and retry_after(None) is None
    assert retry_after("garbage") is None
    later = retry_after(time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30)))
    assert later is not None and 25 < later <= 30


def test_http_config_keeps_the_gateways_limits() -> None:
    with pytest.raises(ValueError, match=r"1\.\.1000"):
        HttpConfig(max_records=1_001)
    with pytest.raises(ValueError, match="http"):
        HttpSink("gw.example.com", KEY)


def test_init_with_an_endpoint_or_from_the_environment(
    fake_gateway: FakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METERLINE_KAFKA_BOOTSTRAP", "127.0.0.1:1")  # the endpoint wins
    monkeypatch.setenv("METERLINE_ENDPOINT", fake_gateway.url)
    monkeypatch.setenv("METERLINE_API_KEY", KEY)
    c = init(auto_instrument=False, flush_at_exit=False, http=FAST)
    try:
        assert isinstance(c.sink, HttpSink)
        track_action(action_name="from_env", duration_ms=1)
        assert meterline.producers.flush(5) == 0
        assert [r["name"] for r in fake_gateway.received] == ["from_env"]
        assert fake_gateway.requests[0]["headers"]["Authorization"] == f"Bearer {KEY}"
    finally:
        meterline.producers.set_client(None)
        c.close(1)
    with pytest.raises(ValueError, match="not both"):
        init("kafka:9092", endpoint=fake_gateway.url)


def test_an_endpoint_without_a_key_raises_only_in_strict_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("METERLINE_API_KEY", raising=False)
    monkeypatch.setenv("METERLINE_STRICT", "1")
    with pytest.raises(NotConfigured, match="METERLINE_API_KEY"):
        init(endpoint=_dead_url(), auto_instrument=False)
    monkeypatch.setenv("METERLINE_STRICT", "0")
    c = init(endpoint=_dead_url(), auto_instrument=False, flush_at_exit=False)
    try:
        assert isinstance(c.sink, HttpSink) and "Authorization" not in c.sink._headers
    finally:
        meterline.producers.set_client(None)
        c.close(0.1)


def test_a_forked_child_posts_with_its_own_thread(fake_gateway: FakeGateway) -> None:
    c = _client(fake_gateway, flush_at_exit=True)
    try:
        c.record(_ev(0))
        assert c.flush(5) == 0
        pid = os.fork()
        if pid == 0:  # the child: the inherited client records and flushes through HTTP
            code = 1
            try:
                c.record(_ev(1))
                code = 0 if c.flush(5) == 0 and c.stats.delivered == 1 else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert sorted(fake_gateway.ids()) == ["e0", "e1"]
    finally:
        c.close(1)


# -- exit paths (tests/producers/test_exit_paths.py for the Kafka transport) -------------------

EXIT_N = 2_000


def _run_child(mode: str, n: int, url: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.producers.exit_child", mode, str(n), url, "-"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), "METERLINE_SHUTDOWN_TIMEOUT": "20", **env},
    )  # fmt: skip


def _exit_ids(n: int, tag: str = "") -> list[str]:
    return sorted(stable_id("agentsight", "exit_test", f"{tag}k{i}") for i in range(n))


@pytest.mark.parametrize(("mode", "returncode"), [
    ("atexit", 0), ("sigterm", -signal.SIGTERM), ("sigint", -signal.SIGINT), ("app-handler", 3),
    ("fork", 0), ("forkserver", 0),
])  # fmt: skip
def test_no_record_is_lost_at_exit_on_a_signal_or_in_a_child(
    fake_gateway: FakeGateway, mode: str, returncode: int
) -> None:
    done = _run_child(mode, EXIT_N, fake_gateway.url)
    assert done.returncode == returncode, done.stderr[-2000:]
    assert sorted(fake_gateway.ids()) == _exit_ids(EXIT_N)


def test_gateway_down_the_spool_is_resent_by_the_next_process(
    fake_gateway: FakeGateway, tmp_path: Path
) -> None:
    spool = tmp_path / "meterline.jsonl"
    down = _run_child("down-spool", EXIT_N, _dead_url(), METERLINE_SHUTDOWN_TIMEOUT="1",
                      METERLINE_SPOOL_PATH=str(spool))  # fmt: skip
    assert down.returncode == 0, down.stderr[-2000:]
    stats = json.loads(down.stdout.strip().splitlines()[-1])
    assert stats["spooled"] == EXIT_N and stats["failed"] == 0 and stats["delivered"] == 0
    assert len(spool.read_bytes().splitlines()) == EXIT_N
    up = _run_child("atexit", 0, fake_gateway.url, METERLINE_SPOOL_PATH=str(spool))
    assert up.returncode == 0, up.stderr[-2000:]
    assert sorted(fake_gateway.ids()) == _exit_ids(EXIT_N)
    assert not spool.exists()

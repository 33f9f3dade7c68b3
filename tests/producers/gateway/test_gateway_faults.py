"""The gateway killed with -9 mid-load loses no answered request; no broker answers 503."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from meterline.producers.gateway import GatewayConfig, GatewayServer, KeyStore
from tests.fixtures import wait_until

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, body: bytes, key: str) -> int:
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_gateway_killed_mid_load_every_request_answered_200_is_in_clickhouse(
    pipeline_factory: Any, keystore: KeyStore, tmp_path: Path
) -> None:
    pipeline = pipeline_factory()
    _, key = keystore.create("acme", "load")
    port = _free_port()
    env = {**os.environ, **pipeline.settings.to_env()}
    with open(tmp_path / "gw.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "meterline.cli", "gateway", "--port", str(port),
             "--kafka-bootstrap", str(pipeline.settings.kafka_bootstrap),
             "--keys-file", str(keystore.path), "--rate-limit", "10000", "--burst", "10000"],
            env=env, stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1/events"

    seen: list[object] = []

    def up() -> bool:
        try:
            status = _post(url, b"[]", key)
        except OSError as exc:
            status = exc
        if status == 503:
            try:
                urllib.request.urlopen(url.replace("/v1/events", "/readyz"), timeout=5)
            except urllib.error.HTTPError as exc:
                status = exc.read()
        seen.append(status)
        return status == 200

    try:
        assert wait_until(up, 30), (seen[-3:], (tmp_path / "gw.log").read_text())
        answered: list[str] = []
        lock, stop = threading.Lock(), threading.Event()

        def load(worker: int) -> None:
            n = 0
            while not stop.is_set():
                ids = [f"k{worker}-{n}-{i}" for i in range(50)]
                n += 1
                body = b"\n".join(json.dumps({
                    "type": "action", "event_id": e, "trace_id": f"t{worker}-{n}", "name": "x",
                    "timestamp": "2026-01-10T10:00:00Z"}).encode() for e in ids)  # fmt: skip
                try:
                    status = _post(url, body, key)
                except OSError:
                    return  # the gateway is gone: unanswered, the client would retry
                if status == 200:
                    with lock:
                        answered.extend(ids)

        threads = [threading.Thread(target=load, args=(w,)) for w in range(3)]
        for t in threads:
            t.start()
        time.sleep(2.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        stop.set()
        for t in threads:
            t.join(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(answered) >= 500, f"too little load before the kill: {len(answered)}"
    db, ch = pipeline.settings.database, pipeline.clickhouse

    def stored() -> set[str]:
        return {r[0] for r in ch.query(f"SELECT event_id FROM {db}.events FINAL").result_rows}

    assert wait_until(lambda: set(answered) <= stored(), 90, pipeline=pipeline), (
        len(set(answered) - stored())
    )


def test_broker_unreachable_answers_503_with_retry_after(keystore: KeyStore) -> None:
    _, key = keystore.create("acme", "down")
    config = GatewayConfig(kafka_bootstrap=f"127.0.0.1:{_free_port()}", keys_file=keystore.path,
                           port=0, readiness_interval_s=0.5)  # fmt: skip
    server = GatewayServer(config).start()
    try:
        req = urllib.request.Request(server.url + "/v1/events", data=b"[]", method="POST",
                                     headers={"Authorization": f"Bearer {key}"})  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=15)
        assert err.value.code == 503 and int(err.value.headers["Retry-After"]) >= 1
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(server.url + "/readyz", timeout=15)
        assert err.value.code == 503
    finally:
        server.stop()

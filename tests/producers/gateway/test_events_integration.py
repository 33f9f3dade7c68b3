"""POST /v1/events on real Tansu + chDB, sent with curl: keys, project, limits, rate limit."""

from __future__ import annotations

import gzip
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from meterline.producers.gateway import KeyStore
from tests.fixtures import wait_until

pytestmark = pytest.mark.integration


def curl(url: str, body: bytes, tmp: Path, *headers: str) -> tuple[int, dict[str, str], Any]:
    """POST ``body`` with curl; (status, response headers, parsed JSON body)."""
    data = tmp / "body.bin"
    data.write_bytes(body)
    cmd = ["curl", "-sS", "-D", "-", "-X", "POST", "--data-binary", f"@{data}", url]
    for h in headers:
        cmd += ["-H", h]
    out = subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout.decode()
    head, _, payload = out.partition("\r\n\r\n")
    lines = head.split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return status, hdrs, json.loads(payload) if payload.strip() else None


def _action(i: int, trace: str, **extra: Any) -> dict[str, Any]:
    return {"type": "action", "event_id": f"gw-{i}", "trace_id": trace, "name": "extract",
            "timestamp": "2026-01-10T10:00:00Z", **extra}  # fmt: skip


def _ndjson(records: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def test_curl_ndjson_gzip_with_key_lands_in_clickhouse_stamped_with_the_keys_project(
    gateway_factory: Any, keystore: KeyStore, tmp_path: Path
) -> None:
    pipeline, gw = gateway_factory()
    _, key = keystore.create("acme", "ci")
    url = gw.url + "/v1/events"
    records = [
        {"type": "trajectory", "trace_id": "tr-1", "user_id": "u-7", "status": "success",
         "timestamp": "2026-01-10T10:00:00Z"},
        _action(1, "tr-1"),
        _action(2, "tr-1", kind="llm_call", model="gpt-4o", input_tokens=120, output_tokens=30),
        {"type": "action", "trace_id": "tr-1", "name": "no-id",
         "timestamp": "2026-01-10T10:00:00Z"},
        _action(4, "tr-1", project="globex"),
        _action(5, "tr-1", project="acme"),
    ]  # fmt: skip
    auth = f"Authorization: Bearer {key}"
    ndjson, gz = "Content-Type: application/x-ndjson", "Content-Encoding: gzip"
    status, _, answer = curl(url, gzip.compress(_ndjson(records)), tmp_path, auth, ndjson, gz)
    assert status == 200, answer
    assert answer == {
        "pushed": 4, "skipped": 2,
        "errors": ["#3: event_id: Field required",
                   "#4: project: 'globex' is not this API key's project 'acme'"],
    }  # fmt: skip

    db, ch = pipeline.settings.database, pipeline.clickhouse

    def landed() -> bool:
        rows = ch.query(f"SELECT count() FROM {db}.events FINAL WHERE joined = 1").result_rows
        return int(rows[0][0]) == 3

    assert wait_until(landed, 60, pipeline=pipeline)
    rows = ch.query(
        f"SELECT event_id, project, user_id, input_tokens FROM {db}.events FINAL ORDER BY event_id"
    ).result_rows
    assert [tuple(r) for r in rows] == [
        ("gw-1", "acme", "u-7", 0), ("gw-2", "acme", "u-7", 120), ("gw-5", "acme", "u-7", 0)
    ]  # fmt: skip

    # a JSON array is accepted too; a wrong key is refused
    status, _, answer = curl(url, json.dumps([_action(6, "tr-1")]).encode(), tmp_path, auth)
    assert (status, answer["pushed"]) == (200, 1)
    status, _, answer = curl(url, b"[]", tmp_path, "Authorization: Bearer mlk_nope_nope")
    assert status == 401 and "unknown or revoked" in answer["error"]
    status, _, _ = curl(url, b"[]", tmp_path)
    assert status == 401

    # over the limits: 413 saying them
    many = _ndjson([_action(i, f"t{i}") for i in range(1_001)])
    status, _, answer = curl(url, many, tmp_path, auth)
    assert status == 413 and "at most 1000 records and 5242880 bytes" in answer["error"]
    big = gzip.compress(b" " * (6 * 1024 * 1024) + b"[]")
    status, _, answer = curl(url, big, tmp_path, auth, "Content-Encoding: gzip")
    assert status == 413, answer

    # the metrics count per key id and never show the key
    metrics = subprocess.run(["curl", "-sS", gw.url + "/metrics"], capture_output=True,
                             check=True).stdout.decode()  # fmt: skip
    entry = keystore.list()[0]
    assert 'reason="wrong_project"' in metrics and entry.key_id in metrics
    assert key not in metrics and key.split("_")[-1] not in metrics

    # revoked while the gateway runs: refused within seconds
    keystore.revoke(entry.key_id)
    t0 = time.monotonic()
    while curl(url, b"[]", tmp_path, auth)[0] != 401:
        assert time.monotonic() - t0 < 5, "revoked key still accepted after 5 s"
        time.sleep(0.2)


def test_rate_limit_answers_429_with_retry_after(
    gateway_factory: Any, keystore: KeyStore, tmp_path: Path
) -> None:
    _, gw = gateway_factory(rate_per_s=0.5, burst=2)
    _, key = keystore.create("acme", "limited")
    _, other = keystore.create("acme", "other")
    url, body = gw.url + "/v1/events", _ndjson([_action(1, "t")])
    codes = [curl(url, body, tmp_path, f"Authorization: Bearer {key}") for _ in range(3)]
    assert [c[0] for c in codes] == [200, 200, 429]
    assert int(codes[2][1]["retry-after"]) >= 1
    # the bucket is per key
    assert curl(url, body, tmp_path, f"Authorization: Bearer {other}")[0] == 200


def test_healthz_and_readyz(gateway_factory: Any, tmp_path: Path) -> None:
    _, gw = gateway_factory()
    for path in ("/healthz", "/readyz"):
        out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                              gw.url + path], capture_output=True, check=True)  # fmt: skip
        assert out.stdout == b"200"

"""Throughput, CPU per record and latency of the ingestion gateway against the SDK's direct
Kafka produce, in one run on an embedded Tansu broker.

- sdk:      ``MeterlineProducer.send_encoded`` of the same records in this process, then flush
- sdk-http: ``MeterlineClient.from_http`` (the SDK's HTTP transport, batches of 500, gzip)
            recording the same records into that gateway, until flushed (records/s, SDK CPU
            per record in this process: building, redaction, limits, encoding, gzip)
- gateway:  ``meterline gateway`` as a child process; an aiohttp client posts gzip NDJSON
            batches of 100 and 1,000 records (``--concurrency`` in flight) as fast as
            answered (records/s, gateway CPU per record from /proc), then batches of 100 at
            half that rate (p50/p99 request latency).

Target (issue 24): >= 25,000 records/s with batches of 100; p99 < 50 ms at half load.
Prints, never asserts.

    python bench/bench_gateway.py [--records 100000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from meterline.embedded.broker import TansuBroker
from meterline.ops.admin import ensure_topics
from meterline.producers.client import MeterlineProducer
from meterline.producers.gateway.keys import KeyStore
from meterline.producers.sdk import MeterlineClient
from meterline.schemas import Topics, decode_raw

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def record(i: int) -> bytes:
    return json.dumps({
        "type": "action", "event_id": f"b-{i}", "trace_id": f"t-{i // 10}", "name": "extract",
        "kind": "llm_call", "model": "gpt-4o", "input_tokens": 120, "output_tokens": 30,
        "timestamp": "2026-01-10T10:00:00Z", "user_id": f"u-{i % 97}",
    }, separators=(",", ":")).encode()  # fmt: skip


def bench_sdk(bootstrap: str, topics: Topics, values: list[bytes]) -> tuple[float, float]:
    p = MeterlineProducer(bootstrap, topics=topics)
    keys = [json.loads(v)["trace_id"].encode() for v in values]
    c0, t0 = time.process_time(), time.perf_counter()
    for k, v in zip(keys, values, strict=True):
        p.send_encoded(topics.actions, k, v)
    assert p.flush(60) == 0
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    p.close()
    return len(values) / wall, cpu / len(values) * 1e6


async def post_all(url: str, key: str, bodies: list[bytes], concurrency: int,
                   interval_s: float = 0.0) -> list[float]:  # fmt: skip
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {key}", "Content-Encoding": "gzip",
               "Content-Type": "application/x-ndjson"}  # fmt: skip
    queue = list(reversed(bodies))
    start = time.perf_counter()
    sent = 0

    async with aiohttp.ClientSession(headers=headers) as s:
        async def worker() -> None:
            nonlocal sent
            while queue:
                body = queue.pop()
                if interval_s:
                    due = start + sent * interval_s
                    sent += 1
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
                t0 = time.perf_counter()
                async with s.post(url, data=body) as r:
                    await r.read()
                    assert r.status == 200, (r.status, await r.text())
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def bench_sdk_http(url: str, key: str, n: int, gw_pid: int) -> tuple[float, float, float]:
    """(records/s, SDK CPU us/record, gateway CPU us/record) of the SDK over HTTP."""
    records = [decode_raw(record(50 * n + i)) for i in range(n)]
    client = MeterlineClient.from_http(url, key, project="bench", max_queue=n + 1,
                                       flush_at_exit=False)  # fmt: skip
    g0, c0, t0 = cpu_s(gw_pid), time.process_time(), time.perf_counter()
    for rec in records:
        client.record(rec)
    left = client.flush(600)
    wall, cpu, gw = time.perf_counter() - t0, time.process_time() - c0, cpu_s(gw_pid) - g0
    assert left == 0 and client.stats.delivered == n, client.stats
    client.close(5)
    return n / wall, cpu / n * 1e6, gw / n * 1e6


def bodies(n: int, batch: int, offset: int) -> list[bytes]:
    return [gzip.compress(b"\n".join(record(offset + i + j) for j in range(batch)))
            for i in range(0, n, batch)]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    n = args.records
    tmp = Path(tempfile.mkdtemp(prefix="bench-gw-"))
    broker = TansuBroker(log_path=tmp / "tansu.log").start()
    topics = Topics("bench")
    try:
        ensure_topics(broker.bootstrap, topics.all, 4)
        sdk_rate, sdk_cpu = bench_sdk(broker.bootstrap, topics, [record(i) for i in range(n)])
        print(f"sdk direct produce:      {sdk_rate:>9,.0f} records/s  {sdk_cpu:6.1f} us CPU/record")
        store = KeyStore(tmp / "keys.json")
        _, key = store.create("bench", "bench")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {**os.environ, "METERLINE_TOPIC_PREFIX": "bench", "METERLINE_LOG_LEVEL": "warn"}
        gw = subprocess.Popen(
            [sys.executable, "-m", "meterline.cli", "gateway", "--port", str(port),
             "--kafka-bootstrap", broker.bootstrap, "--keys-file", str(store.path),
             "--rate-limit", "1000000", "--burst", "1000000"], env=env,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}/v1/events"
        for _ in range(300):
            try:
                asyncio.run(post_all(url, key, [gzip.compress(b"")], 1))
                break
            except Exception:
                time.sleep(0.1)
        rate100 = 0.0
        for batch in (100, 1_000):
            work = bodies(n, batch, 10 * n * batch)
            asyncio.run(post_all(url, key, work[:5], args.concurrency))  # warm-up
            c0, t0 = cpu_s(gw.pid), time.perf_counter()
            lat = asyncio.run(post_all(url, key, work, args.concurrency))
            wall, cpu = time.perf_counter() - t0, cpu_s(gw.pid) - c0
            rate = n / wall
            rate100 = rate if batch == 100 else rate100
            q = statistics.quantiles(lat, n=100)
            print(f"gateway batches of {batch:>5}: {rate:>9,.0f} records/s  "
                  f"{cpu / n * 1e6:6.1f} us gateway CPU/record  "
                  f"p50 {q[49] * 1e3:5.1f} ms  p99 {q[98] * 1e3:5.1f} ms (saturated)")  # fmt: skip
        half = rate100 / 2
        work = bodies(n // 2, 100, 99 * n)
        lat = asyncio.run(post_all(url, key, work, args.concurrency, interval_s=100 / half))
        q = statistics.quantiles(lat, n=100)
        print(f"gateway batches of   100 at {half:,.0f} records/s (half load): "
              f"p50 {q[49] * 1e3:5.1f} ms  p99 {q[98] * 1e3:5.1f} ms")
        rate, sdk_us, gw_us = bench_sdk_http(f"http://127.0.0.1:{port}", key, n, gw.pid)
        print(f"sdk over HTTP (HttpSink): {rate:>9,.0f} records/s  {sdk_us:6.1f} us SDK CPU/record"
              f"  {gw_us:6.1f} us gateway CPU/record")  # fmt: skip
        gw.terminate()
        gw.wait(30)
    finally:
        broker.stop()


if __name__ == "__main__":
    main()

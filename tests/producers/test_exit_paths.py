"""Issue 22 section 2: the agent's tail reaches the broker on every exit path.

Each test runs a real agent process (``tests/producers/exit_child.py``) against the session's
Tansu broker, and counts the distinct event ids on the topic afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from meterline.ops.admin import ensure_topics
from meterline.producers import stable_id
from meterline.schemas import Topics, framing

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
N = 20_000  # the scenario


def _run(
    mode: str, n: int, bootstrap: str, prefix: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.producers.exit_child", mode, str(n), bootstrap, prefix],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), "METERLINE_SHUTDOWN_TIMEOUT": "20", **env},
    )


def _topic(tansu: Any) -> Topics:
    topics = Topics(f"exit{uuid.uuid4().hex[:8]}")
    ensure_topics(tansu.bootstrap, topics.raw, 2)
    return topics


def _event_ids(bootstrap: str, topics: Topics, expected: int) -> set[str]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g{uuid.uuid4().hex[:6]}",
                  "enable.partition.eof": True})
    c.assign([TopicPartition(topics.actions, p, 0) for p in range(2)])
    ids: set[str] = set()
    eof: set[int] = set()
    try:
        while len(eof) < 2 or len(ids) < expected:
            msgs = c.consume(1000, 3.0)
            if not msgs and len(eof) == 2:
                break
            for m in msgs:
                if m.error() is not None:
                    eof.add(m.partition())
                    continue
                eof.discard(m.partition())
                for line in framing.split(m.value()):
                    ids.add(json.loads(line)["event_id"])
    finally:
        c.close()
    return ids


def _expected(n: int, tag: str = "") -> set[str]:
    return {stable_id("agentsight", "exit_test", f"{tag}k{i}") for i in range(n)}


@pytest.mark.parametrize(("mode", "returncode"), [
    ("atexit", 0),
    ("sigterm", -signal.SIGTERM),  # still terminated by the signal, after the flush
    ("sigint", -signal.SIGINT),  # KeyboardInterrupt still raised (uncaught: killed by it)
    ("app-handler", 3),  # the application's own SIGTERM handler still runs
])
def test_no_record_is_lost_at_exit_or_on_a_signal(tansu: Any, mode: str, returncode: int) -> None:
    topics = _topic(tansu)
    done = _run(mode, N, tansu.bootstrap, topics.prefix)
    assert done.returncode == returncode, done.stderr[-2000:]
    if mode == "app-handler":
        assert "app handler ran" in done.stdout
    assert _event_ids(tansu.bootstrap, topics, N) == _expected(N)


@pytest.mark.parametrize("mode", ["fork", "forkserver"])
def test_no_record_is_lost_in_a_multiprocessing_child(tansu: Any, mode: str) -> None:
    topics = _topic(tansu)
    done = _run(mode, N, tansu.bootstrap, topics.prefix)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _event_ids(tansu.bootstrap, topics, N) == _expected(N)


def test_a_client_inherited_through_fork_serves_the_child_and_the_parent(tansu: Any) -> None:
    topics = _topic(tansu)
    n = 5_000
    done = _run("fork-inherited", n, tansu.bootstrap, topics.prefix)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _event_ids(tansu.bootstrap, topics, 2 * n) == _expected(n, "c") | _expected(n, "p")


def _dead_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def test_broker_down_every_record_is_counted_failed_and_reported(tansu: Any) -> None:
    n = 2_000
    done = _run("down", n, _dead_port(), "down", METERLINE_SHUTDOWN_TIMEOUT="2")
    assert done.returncode == 0, done.stderr[-2000:]
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    assert stats["failed"] == n and stats["on_error"] == n
    assert stats["delivered"] == 0 and stats["spooled"] == 0


def test_broker_down_the_spool_is_resent_by_the_command_with_the_same_event_ids(
    tansu: Any, tmp_path: Path
) -> None:
    n = 5_000
    spool = tmp_path / "spool" / "meterline.jsonl"
    done = _run("down-spool", n, _dead_port(), "down", METERLINE_SHUTDOWN_TIMEOUT="2",
                METERLINE_SPOOL_PATH=str(spool))
    assert done.returncode == 0, done.stderr[-2000:]
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    assert stats["spooled"] == n and stats["failed"] == 0
    assert len(spool.read_bytes().splitlines()) == n

    topics = _topic(tansu)
    cli = subprocess.run(
        [sys.executable, "-m", "meterline.cli", "resend-spool", str(spool),
         "--kafka-bootstrap", tansu.bootstrap, "--topic-prefix", topics.prefix],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert f"resent {n} record(s); 0 not delivered" in cli.stdout
    assert not spool.exists()
    assert _event_ids(tansu.bootstrap, topics, n) == _expected(n)


def test_the_next_process_resends_the_spool(tansu: Any, tmp_path: Path) -> None:
    n = 2_000
    spool = tmp_path / "meterline.jsonl"
    down = _run("down-spool", n, _dead_port(), "x", METERLINE_SHUTDOWN_TIMEOUT="2",
                METERLINE_SPOOL_PATH=str(spool))
    assert down.returncode == 0, down.stderr[-2000:]
    topics = _topic(tansu)
    # the next agent run, broker reachable: records nothing new, re-sends the spool
    up = _run("atexit", 0, tansu.bootstrap, topics.prefix, METERLINE_SPOOL_PATH=str(spool))
    assert up.returncode == 0, up.stderr[-2000:]
    assert _event_ids(tansu.bootstrap, topics, n) == _expected(n)
    assert not spool.exists()

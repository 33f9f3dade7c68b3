"""The SDK client: non-blocking queue, overflow, failures, flush, configuration, imports."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError

import meterline.producers
from meterline.producers.config import init
from meterline.producers.errors import NotConfigured
from meterline.producers.sdk import MeterlineClient, stable_id
from meterline.producers.testing import MemorySink
from meterline.schemas import ActionEvent, RawRecord, TelemetryEvent

ROOT = Path(__file__).resolve().parents[2]


class GateSink(MemorySink):
    """A sink whose ``send`` waits until the gate opens: a stalled broker."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def send(self, record: RawRecord, on_delivery: Any = None) -> None:
        self.gate.wait(10)
        super().send(record, on_delivery)


def _ev(i: int = 0, **kw: Any) -> ActionEvent:
    return ActionEvent(event_id=f"e{i}", name="step", **kw)


def test_record_is_the_emit_hook_and_stamps_project_and_redacts(
    client: MeterlineClient, sink: MemorySink
) -> None:
    assert client.record(_ev(metadata={"authorization": "Basic abcdefgh12"},
                             error_message="failed with token=abc123"))
    assert client.emit(TelemetryEvent(event_id="t", event_type="user.accept", project="other"))
    assert client.flush(5) == 0
    action, tele = sink.records
    assert isinstance(action, ActionEvent)
    assert action.project == "unit" and tele.project == "other"  # explicit project kept
    assert action.metadata == {"authorization": "[REDACTED]"}
    assert action.error_message == "failed with token=[REDACTED]"
    assert client.stats.delivered == 2 and client.stats.sent == 2


def test_recording_never_blocks_when_the_sink_stalls_and_overflow_drops_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = GateSink()
    c = MeterlineClient(sink, max_queue=10, flush_at_exit=False)
    t0 = time.perf_counter()
    with caplog.at_level(logging.WARNING):
        results = [c.record(_ev(i)) for i in range(50)]
    assert time.perf_counter() - t0 < 0.5  # no waiting on the stalled sink
    assert results.count(False) == c.stats.dropped >= 39
    assert any("queue full" in r.message for r in caplog.records)
    sink.gate.set()
    assert c.close(5) == 0
    assert len(sink.records) == 50 - c.stats.dropped


def test_block_overflow_waits_up_to_the_timeout_then_drops() -> None:
    sink = GateSink()
    c = MeterlineClient(sink, max_queue=1, overflow="block", block_timeout_s=0.1,
                        flush_at_exit=False)
    c.record(_ev(0))
    c.record(_ev(1))  # the sender holds one, the queue the other
    time.sleep(0.05)
    t0 = time.perf_counter()
    ok = [c.record(_ev(i)) for i in range(2, 4)]
    assert time.perf_counter() - t0 >= 0.15 and ok.count(False) >= 1
    threading.Timer(0.05, sink.gate.set).start()
    assert c.record(_ev(9))  # room appears within the timeout
    assert c.close(5) == 0


def test_delivery_build_and_send_failures_are_counted_and_reported() -> None:
    sink = MemorySink()
    delivered: list[tuple[str, KafkaError | None]] = []
    errors: list[str] = []
    c = MeterlineClient(sink, flush_at_exit=False,
                        on_delivery=lambda r, e: delivered.append((r.event_id, e)),  # type: ignore[union-attr]
                        on_error=lambda msg, exc: errors.append(msg))
    sink.fail_deliveries(1)
    c.record(_ev(1))
    c.record(_ev(2))
    c.submit(lambda: ActionEvent(event_id="x", name=""))  # invalid: empty name
    sink.refuse_sends(1)
    c.record(_ev(3))
    assert c.flush(5) == 0
    assert [e is None for _, e in delivered] == [False, True]
    s = c.stats
    assert (s.failed, s.delivered, s.build_errors, s.send_errors) == (1, 1, 1, 1)
    assert any("could not build" in m for m in errors) and any("not sent" in m for m in errors)
    c.close()
    assert not c.record(_ev(4)) and c.stats.dropped == 1  # closed: dropped, not raised


def test_flush_waits_for_items_queued_before_it() -> None:
    sink = GateSink()
    c = MeterlineClient(sink, flush_at_exit=False)
    for i in range(5):
        c.record(_ev(i))
    assert c.flush(0.1) > 0  # still stalled: reports what is pending
    sink.gate.set()
    assert c.flush(5) == 0 and len(sink.records) == 5
    c.close()


def test_stable_ids_are_deterministic() -> None:
    assert stable_id("a", 1) == stable_id("a", 1) != stable_id("a", 2)
    assert len(stable_id("x")) == 32


def test_init_needs_bootstrap_servers_in_strict_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("METERLINE_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.setenv("METERLINE_STRICT", "1")
    with pytest.raises(NotConfigured, match="METERLINE_KAFKA_BOOTSTRAP"):
        init()


def test_init_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METERLINE_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.setenv("METERLINE_PROJECT", "acme")
    monkeypatch.setenv("METERLINE_TOPIC_PREFIX", "px")
    c = init()
    try:
        assert c.project == "acme"
        assert c.sink.topics.actions == "px.actions"  # type: ignore[attr-defined]
    finally:
        meterline.producers.set_client(None)
        c.close(timeout=0.1)


def test_the_sdk_imports_without_pipeline_dependencies() -> None:
    code = (
        "import sys\n"
        "for m in ('faust', 'mode', 'clickhouse_connect', 'chdb', 'aiokafka', 'yaml'):\n"
        "    sys.modules[m] = None\n"
        "import meterline, meterline.schemas\n"
        "from meterline.producers import valmi, agentsight, tracer, telemetry, agentops, testing\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for folder in ("producers", "schemas"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            for banned in ("import faust", "from faust", "clickhouse_connect", "import chdb"):
                assert banned not in text, f"{path} imports {banned}"

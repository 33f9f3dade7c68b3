"""SDK counters: readable in-process, exported to Prometheus only when asked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from meterline.producers.metrics import register
from meterline.producers.sdk import MeterlineClient
from meterline.producers.testing import MemorySink
from meterline.schemas import ActionEvent

ROOT = Path(__file__).resolve().parents[2]


def test_delivery_failures_show_in_the_snapshot_and_in_the_registry(
    client: MeterlineClient, sink: MemorySink
) -> None:
    sink.fail_deliveries(2)
    for i in range(5):
        assert client.record(ActionEvent(event_id=f"m{i}", name="step"))
    client.flush(timeout=5)
    snap = client.stats.snapshot()
    assert (snap["sent"], snap["delivered"], snap["failed"]) == (5, 3, 2)

    registry = CollectorRegistry()
    register(client, registry)
    samples = {
        (s.name, s.labels.get("outcome")): s.value
        for f in text_string_to_metric_families(generate_latest(registry).decode())
        for s in f.samples
    }
    assert samples[("meterline_sdk_records_total", "delivered")] == 3
    assert samples[("meterline_sdk_records_total", "failed")] == 2
    assert samples[("meterline_sdk_records_total", "dropped")] == 0
    assert samples[("meterline_sdk_queue_depth", None)] == 0


def test_the_minimal_install_never_imports_prometheus_client() -> None:
    code = (
        "import sys\n"
        "sys.modules['prometheus_client'] = None  # as if not installed\n"
        "import meterline.producers.metrics\n"
        "try:\n"
        "    meterline.producers.metrics.register()\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "pip install 'meterline[metrics]'" in proc.stdout

"""Every exported metric is named in MetricName and documented in docs/operations.md."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

from prometheus_client import CollectorRegistry

from meterline.ops.endpoints import new_registry
from meterline.producers.metrics import register as register_sdk
from meterline.producers.sdk import MeterlineClient
from meterline.producers.testing import MemorySink
from meterline.sinks.metrics import SinkMetrics
from meterline.stream_processors.metrics import (
    METRIC_NAMES,
    LagCollector,
    ProcessorMetrics,
    StallCollector,
    StepCounters,
)
from meterline.stream_processors.pricing.step import PricingStats
from meterline.stream_processors.rules.stage import StageStats
from meterline.stream_processors.steps.dedupe import DedupeWindow
from meterline.stream_processors.steps.quarantine import ProjectGuard

DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def fake_processor() -> SimpleNamespace:
    joiner = SimpleNamespace(
        joined=3, unjoined=2, late_joined=1, held=4, pending_overflow=0, reopened=0, expired=0
    )
    out = SimpleNamespace(
        producer=SimpleNamespace(sent={"e": 6}),
        enriched="e",
        trajectory_state="s",
        dead_letters="d",
        outcomes="o",
    )
    rules = SimpleNamespace(stats=StageStats(emitted=2, retracted=1))
    guard = ProjectGuard(0.5, 60.0, window=10, min_records=10)
    for _ in range(10):
        guard.invalid("bad", "schema_version: 2")
    pricing = SimpleNamespace(stats=PricingStats())
    return SimpleNamespace(
        dedupe=SimpleNamespace(window=DedupeWindow()), joiner=joiner, out=out, rules=rules,
        guard=guard, pricing=pricing,
    )  # fmt: skip


def exported_names() -> set[str]:
    registry = new_registry("x")
    ProcessorMetrics(registry)
    SinkMetrics(registry)  # shares meterline_consumer_lag with LagCollector: one per process
    registry.register(StepCounters(fake_processor()))
    register_sdk(MeterlineClient(MemorySink(), flush_at_exit=False), registry)
    other = CollectorRegistry()
    other.register(LagCollector("g", lambda: [("t", 0, 5)]))
    other.register(StallCollector(SimpleNamespace(stalled=False, stalls=0, remedies=0)))
    names = {m.name for reg in (registry, other) for m in reg.collect()}
    return {n for n in names if n.startswith("meterline_")}


def test_every_exported_metric_is_in_the_literal_and_the_docs() -> None:
    exported = exported_names()
    assert exported == set(METRIC_NAMES)
    documented = set(re.findall(r"`(meterline_[a-z_]+)`", DOCS.read_text()))
    assert set(METRIC_NAMES) <= documented, set(METRIC_NAMES) - documented


def test_step_counters_report_events_out_as_joined_plus_unjoined() -> None:
    registry = CollectorRegistry()
    registry.register(StepCounters(fake_processor()))
    assert registry.get_sample_value("meterline_processor_events_out_total") == 5
    assert (
        registry.get_sample_value("meterline_processor_records_out_total", {"output": "enriched"})
        == 6
    )


def test_a_quarantined_project_is_a_gauge_series_and_counted() -> None:
    registry = CollectorRegistry()
    registry.register(StepCounters(fake_processor()))
    assert registry.get_sample_value("meterline_processor_quarantines_total") == 1
    assert registry.get_sample_value("meterline_processor_quarantined", {"project": "bad"}) == 1

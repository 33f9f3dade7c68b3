"""The gateway's Prometheus metrics. Labels carry the key id, never the key."""

from __future__ import annotations

from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.process_collector import ProcessCollector

MetricName = Literal[
    "meterline_gateway_requests_total",  # requests by endpoint, HTTP status and key id
    "meterline_gateway_records_total",  # records accepted / refused (by reason) per key id
    "meterline_gateway_spans_ignored_total",  # OTLP spans without a GenAI mapping
    "meterline_gateway_request_seconds",  # request latency, receipt to answer
]


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        if registry is None:
            ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "meterline_gateway_requests", "HTTP requests answered",
            ["endpoint", "code", "key_id"], registry=self.registry,
        )  # fmt: skip
        self.records = Counter(
            "meterline_gateway_records", "records accepted (outcome=accepted, reason='') "
            "or refused (outcome=refused, reason=error type)",
            ["endpoint", "outcome", "reason", "key_id"], registry=self.registry,
        )  # fmt: skip
        self.ignored = Counter(
            "meterline_gateway_spans_ignored", "OTLP spans with no GenAI mapping (ignored)",
            ["key_id"], registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "meterline_gateway_request_seconds", "request latency, receipt to answer",
            ["endpoint"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )  # fmt: skip

    def counted(self, endpoint: str, key_id: str, accepted: int, reasons: list[str]) -> None:
        if accepted:
            self.records.labels(endpoint, "accepted", "", key_id).inc(accepted)
        counts: dict[str, int] = {}
        for r in reasons:
            counts[r] = counts.get(r, 0) + 1
        for reason, n in counts.items():
            self.records.labels(endpoint, "refused", reason, key_id).inc(n)

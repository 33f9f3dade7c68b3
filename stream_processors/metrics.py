"""Prometheus metrics of a processor worker, and the list of every meterline metric name.

Cost on the hot path: the steps already keep plain integer counters (duplicates, joined,
unjoined, late joins); :class:`StepCounters` reads them when Prometheus scrapes, so the
per-event loop pays nothing. The processor itself adds one increment per batch and one per
dead letter (pre-bound children, no label lookup per event); the output producer counts
its sends per topic in a plain dict.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, get_args

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from meterline.schemas.reasons import REASONS

MetricName = Literal[
    # -- processor worker (one series set per worker process) --
    "meterline_processor_batches",  # batches processed (and acknowledged by the broker)
    "meterline_processor_messages_in",  # Kafka messages consumed from the raw topics
    "meterline_processor_batch_size",  # histogram: Kafka messages per batch
    "meterline_processor_batch_seconds",  # histogram: batch duration incl. waiting for acks
    "meterline_processor_dead_letters",  # {reason}: records sent to the dead-letter topic
    # (reason quarantined: valid records of a quarantined project)
    "meterline_processor_quarantines",  # times a project was put in quarantine
    "meterline_processor_quarantined",  # gauge {project}: 1 per project in quarantine now
    "meterline_processor_records_out",  # {output}: records produced to enriched,
    # trajectory_state, dead_letters, outcomes (enriched = events_out + late_joins)
    "meterline_processor_events_out",  # unique events produced for the first time
    "meterline_processor_events_joined",  # of those: joined to their trajectory on arrival
    "meterline_processor_events_unjoined",  # of those: sent unjoined (trajectory not known yet)
    "meterline_processor_late_joins",  # early events re-emitted joined when the trajectory came
    "meterline_processor_events_parked",  # early events held (parked) for their trajectory
    "meterline_processor_duplicates_dropped",  # (project, event_id) already emitted: dropped
    "meterline_processor_dedupe_expired",  # event ids forgotten: admitted over a window ago
    "meterline_processor_pending_overflow",  # early events not parked (trace over its limit,
    # or the event too large for one changelog message): they stay unjoined
    "meterline_processor_trajectories_reopened",  # trajectory records that resumed a
    # trajectory closed by the idle timeout (merged at a version above the close's)
    "meterline_processor_closed_trajectories_expired",  # closed trajectories forgotten past
    # METERLINE_TRAJECTORY_RETENTION_S
    "meterline_processor_dedupe_window_events",  # gauge: events remembered by the window
    "meterline_processor_metadata_truncated",  # trajectory records whose metadata lost keys
    # to the state bounds (1,024 keys / 1,000,000 bytes per trajectory)
    "meterline_processor_outputs_too_large",  # records not produced for size and not
    # dead-lettered (changelog records, unjoined events over a limit below ~1 MB)
    "meterline_processor_llm_calls_priced",  # {status}: llm_calls through the price book:
    # priced, unpriced (the book has no price: cost marked unpriced, never $0), invalid_tokens
    # (token parts exceed their totals: flagged, not billed)
    # with a control plane (rule stage):
    "meterline_processor_outcomes_out",  # outcome records produced (incl. retractions)
    "meterline_processor_outcomes_retracted",  # of those: retractions
    "meterline_processor_rule_events_over_cap",  # rule-relevant events over the per-trace cap
    "meterline_worker_stalled",  # gauge: 1 while the worker's partitions have lag and it
    # fetches and processes nothing for METERLINE_WORKER_STALL_S (readiness fails too)
    "meterline_worker_stalls",  # stalls noticed (counter: exposed as ..._total)
    "meterline_worker_stall_remedies",  # attempts to resume a stalled worker (..._total)
    # -- sink (one per sink process; the embedded sink lives in `meterline up`) --
    "meterline_sink_messages_in",  # Kafka messages consumed
    "meterline_sink_batches",  # batches inserted and committed
    "meterline_sink_batch_size",  # histogram: messages per batch
    "meterline_sink_rows_inserted",  # {table}: rows inserted into ClickHouse
    "meterline_sink_insert_seconds",  # histogram {table}: one insert's duration
    "meterline_sink_write_failures",  # failed inserts (retried with backoff)
    "meterline_sink_commit_failures",  # offset commits that failed (batch replays)
    "meterline_sink_dead_letters",  # {reason}: undecodable messages written to dead_letters
    "meterline_sink_held_partitions",  # partitions held on a record the sink cannot decode
    "meterline_sink_held_records",  # records behind such a hold (not dead-lettered)
    # -- both --
    "meterline_consumer_lag",  # gauge {group, topic, partition}: messages behind
    "meterline_up",  # gauge {component}: 1 while the process runs
    # -- SDK, in the agent process (meterline.producers.metrics.register) --
    "meterline_sdk_records",  # {outcome}: SdkStats counters (sent, delivered, failed, ...)
    "meterline_sdk_queue_depth",  # gauge: items waiting in the SDK queue
]
METRIC_NAMES: tuple[str, ...] = get_args(MetricName)

_SIZE_BUCKETS = (1, 10, 100, 500, 1_000, 2_000, 5_000, 10_000, 20_000)
_SECONDS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ProcessorMetrics:
    """Counters the processor increments itself. ``registry`` None: a private registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.registry = r
        self.batches = Counter("meterline_processor_batches", "batches processed", registry=r)
        self.messages_in = Counter(
            "meterline_processor_messages_in", "raw Kafka messages consumed", registry=r
        )
        self.batch_size = Histogram(
            "meterline_processor_batch_size",
            "messages per batch",
            buckets=_SIZE_BUCKETS,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "meterline_processor_batch_seconds",
            "batch duration, including broker acks",
            buckets=_SECONDS_BUCKETS,
            registry=r,
        )
        self._dead_letters = Counter(
            "meterline_processor_dead_letters", "records dead-lettered", ["reason"], registry=r
        )
        self._by_reason = {x: self._dead_letters.labels(reason=x) for x in REASONS}

    def dead_letter(self, reason: str) -> None:
        child = self._by_reason.get(reason)
        if child is None:
            child = self._by_reason[reason] = self._dead_letters.labels(reason=reason)
        child.inc()

    @contextmanager
    def batch(self, messages: int) -> Iterator[None]:
        """Wrap one batch: counts it and its messages, times it (only if it completes)."""
        started = time.perf_counter()
        yield
        self.batch_seconds.observe(time.perf_counter() - started)
        self.batch_size.observe(messages)
        self.messages_in.inc(messages)
        self.batches.inc()


class StepCounters(Collector):
    """Reads the steps' own counters at scrape time (``processor`` is a BatchProcessor)."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor

    def collect(self) -> Iterable[Metric]:
        p = self.processor
        window, joiner = p.dedupe.window, p.joiner
        joined, unjoined = int(joiner.joined), int(joiner.unjoined)
        counters: list[tuple[str, str, int]] = [
            ("meterline_processor_events_out", "unique events produced", joined + unjoined),
            ("meterline_processor_events_joined", "events joined on arrival", joined),
            ("meterline_processor_events_unjoined", "events sent unjoined", unjoined),
            ("meterline_processor_late_joins", "events re-emitted joined", joiner.late_joined),
            (
                "meterline_processor_events_parked",
                "early events parked to wait for their trajectory",
                joiner.held,
            ),
            ("meterline_processor_duplicates_dropped", "duplicates dropped", window.duplicates),
            (
                "meterline_processor_dedupe_expired",
                "event ids forgotten by the dedupe window",
                window.expired,
            ),
            (
                "meterline_processor_pending_overflow",
                "early events not parked",
                joiner.pending_overflow,
            ),
            (
                "meterline_processor_trajectories_reopened",
                "trajectory records that resumed a trajectory closed by the idle timeout",
                joiner.reopened,
            ),
            (
                "meterline_processor_closed_trajectories_expired",
                "closed trajectories forgotten past the retention",
                joiner.expired,
            ),
            ("meterline_processor_metadata_truncated", "trajectory records whose metadata "
             "lost keys to the state bounds", getattr(joiner, "metadata_truncated", 0)),
            ("meterline_processor_outputs_too_large", "records not produced for size, not "
             "dead-lettered", _too_large(p)),
        ]  # fmt: skip
        rules = getattr(p, "rules", None)
        if rules is not None:
            stats = rules.stats
            counters += [
                ("meterline_processor_outcomes_out", "outcome records produced (incl. "
                 "retractions)", stats.emitted),
                ("meterline_processor_outcomes_retracted", "retractions produced", stats.retracted),
                ("meterline_processor_rule_events_over_cap", "rule-relevant events not kept: "
                 "trajectory over max_events_per_trace", stats.over_cap),
            ]  # fmt: skip
        for name, doc, value in counters:
            yield CounterMetricFamily(name, doc, value=int(value))
        pricing = getattr(p, "pricing", None)
        if pricing is not None:
            priced = CounterMetricFamily(
                "meterline_processor_llm_calls_priced", "llm_calls through the price book",
                labels=["status"],
            )  # fmt: skip
            for status, n in pricing.stats.by_status.items():
                priced.add_metric([status], n)
            yield priced
        out = p.out
        sent = out.producer.sent
        records_out = CounterMetricFamily(
            "meterline_processor_records_out", "records produced", labels=["output"]
        )
        for label, topic in (
            ("enriched", out.enriched),
            ("trajectory_state", out.trajectory_state),
            ("dead_letters", out.dead_letters),
            ("outcomes", out.outcomes),
        ):
            records_out.add_metric([label], sent.get(topic, 0))
        yield records_out
        guard = getattr(p, "guard", None)
        if guard is not None:
            yield CounterMetricFamily(
                "meterline_processor_quarantines", "projects put in quarantine",
                value=guard.quarantines,
            )  # fmt: skip
            quarantined = GaugeMetricFamily(
                "meterline_processor_quarantined",
                "projects in quarantine (their records are dead-lettered)",
                labels=["project"],
            )
            for project in guard.quarantined:
                quarantined.add_metric([project], 1)
            yield quarantined
        yield GaugeMetricFamily(
            "meterline_processor_dedupe_window_events",
            "events in the dedupe window",
            value=len(window),
        )


def _too_large(processor: Any) -> int:
    changelogs = [getattr(b, "changelog", None) for b in getattr(processor, "buffers", ())]
    return int(getattr(processor, "too_large", 0)) + sum(
        int(getattr(c, "too_large", 0)) for c in changelogs
    )


class LagCollector(Collector):
    """``meterline_consumer_lag`` computed when scraped, from ``lag()`` -> (topic, p, lag)."""

    def __init__(self, group: str, lag: Callable[[], list[tuple[str, int, int]]]) -> None:
        self.group = group
        self.lag = lag

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "meterline_consumer_lag",
            "messages behind the high watermark, per consumer group and partition",
            labels=["group", "topic", "partition"],
        )
        try:
            rows = self.lag()
        except Exception:  # broker unreachable: no lag series (readiness says why)
            rows = []
        for topic, partition, lag in rows:
            family.add_metric([self.group, topic, str(partition)], lag)
        yield family


class StallCollector(Collector):
    """The stall watch's state (:class:`meterline.stream_processors.faust_layer.stall.StallWatch`),
    read when scraped."""

    def __init__(self, watch: Any) -> None:
        self.watch = watch

    def collect(self) -> Iterable[Metric]:
        w = self.watch
        yield GaugeMetricFamily(
            "meterline_worker_stalled",
            "1 while assigned partitions have lag and nothing is fetched or processed",
            value=1 if w.stalled else 0,
        )
        yield CounterMetricFamily("meterline_worker_stalls", "stalls noticed", value=w.stalls)
        yield CounterMetricFamily(
            "meterline_worker_stall_remedies",
            "attempts to resume a stalled worker",
            value=w.remedies,
        )

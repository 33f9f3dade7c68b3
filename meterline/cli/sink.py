"""``meterline sink``: the ClickHouse sink (and seat recompute with a control plane)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from meterline.cli.common import add_common, settings
from meterline.ops.gc_tuning import tune_gc


def cmd_sink(args: argparse.Namespace) -> int:
    from meterline.billing.services import BillingServices
    from meterline.ops.admin import ensure_topics, topic_config
    from meterline.ops.endpoints import new_registry
    from meterline.ops.monitoring import sink_endpoints
    from meterline.sinks.metrics import SinkMetrics
    from meterline.sinks.service import Stopped, build_sink, clickhouse_writer

    tune_gc()

    s = settings(args)
    if not s.kafka_bootstrap:
        print(
            "meterline sink: set METERLINE_KAFKA_BOOTSTRAP (or --kafka-bootstrap)", file=sys.stderr
        )
        return 2
    ensure_topics(
        s.kafka_bootstrap,
        s.topics.all,
        s.partitions,
        replication_factor=s.replication_factor,
        config=s.kafka_client_config(),
        topic_configs=topic_config(s.max_message_bytes),
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:  # a ClickHouse that is down at start is waited for, like one that goes down later
        writer = clickhouse_writer(s.sink_config(), stop=stop, retry_backoff_s=(0.5, 10.0))
    except Stopped:
        return 0
    registry = new_registry("sink")
    sink = build_sink(s.sink_config(), writer, SinkMetrics(registry))
    server = sink_endpoints(s, registry, sink, None, writer.client, "sink")
    billing = BillingServices(s, writer).start()  # seat recompute with a control plane
    try:
        sink.run(stop)
    finally:
        billing.stop()
        if server is not None:
            server.stop()
    return 0


def add_parser(sub: Any) -> None:
    sink = sub.add_parser("sink", help="run the ClickHouse sink")
    add_common(sink)
    sink.add_argument(
        "--control-plane", help="control-plane YAML: also recompute seats (METERLINE_CONTROL_PLANE)"
    )
    sink.set_defaults(func=cmd_sink)

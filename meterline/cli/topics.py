"""``meterline topics``: create meterline's topics."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from meterline.cli.common import add_common, settings


def cmd_topics(args: argparse.Namespace) -> int:
    """Create meterline's topics (idempotent); fail if one has another partition count."""
    from meterline.ops.admin import ensure_topics, topic_config

    s = settings(args)
    if not s.kafka_bootstrap:
        print(
            "meterline topics: set METERLINE_KAFKA_BOOTSTRAP (or --kafka-bootstrap)",
            file=sys.stderr,
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
    print(f"meterline topics ready: {', '.join(s.topics.all)} x {s.partitions}")
    return 0


def add_parser(sub: Any) -> None:
    topics = sub.add_parser("topics", help="create meterline's topics (idempotent)")
    add_common(topics)
    topics.set_defaults(func=cmd_topics)

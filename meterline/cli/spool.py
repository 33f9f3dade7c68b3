"""``meterline resend-spool``: re-send the records an agent SDK spooled."""

from __future__ import annotations

import argparse
import os
from typing import Any


def cmd_resend_spool(args: argparse.Namespace) -> int:
    """Re-send an SDK spool file (``METERLINE_SPOOL_PATH``); same event ids, so exact."""
    from meterline.producers.spool import resend

    bootstrap = args.kafka_bootstrap or os.environ.get("METERLINE_KAFKA_BOOTSTRAP")
    if not bootstrap:
        print("meterline resend-spool: --kafka-bootstrap or METERLINE_KAFKA_BOOTSTRAP needed")
        return 2
    delivered, failed = resend(args.path, bootstrap, topic_prefix=args.topic_prefix)
    print(f"resent {delivered} record(s); {failed} not delivered (kept in {args.path})")
    return 1 if failed else 0


def add_parser(sub: Any) -> None:
    spool = sub.add_parser("resend-spool", help="re-send the records an agent SDK spooled")
    spool.add_argument("path", help="the spool file (the agents' METERLINE_SPOOL_PATH)")
    spool.add_argument("--kafka-bootstrap", help="env METERLINE_KAFKA_BOOTSTRAP")
    spool.add_argument(
        "--topic-prefix", default=os.environ.get("METERLINE_TOPIC_PREFIX", "meterline")
    )
    spool.set_defaults(func=cmd_resend_spool)

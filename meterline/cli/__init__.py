"""The ``meterline`` command line: up, demo, dashboard, worker, topics, sink, status, report,
sql, backfill, reprice, reconcile, corrections, replay-dead-letters, resend-spool, gateway,
keys.

One module per command (or small family) registers its subparser; :func:`parser` assembles
them here, in the order ``meterline --help`` lists them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from meterline.cli import (
    billing,
    common,
    dashboard,
    demo,
    gateway,
    replay,
    sink,
    spool,
    status,
    topics,
    up,
    worker,
)
from meterline.ops.logs import LOG_LEVELS, configure_logging
from meterline.settings import Settings

__all__ = ["LOG_LEVELS", "main", "parser"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="meterline", description="Metering pipeline for AI agents.")
    sub = p.add_subparsers(dest="command", required=True)
    spool.add_parser(sub)
    up.add_parser(sub)
    demo.add_parser(sub)
    dashboard.add_parser(sub)
    worker.add_parser(sub)
    topics.add_parser(sub)
    sink.add_parser(sub)
    status.add_parser(sub)
    billing.add_parsers(sub)
    replay.add_parser(sub)
    gateway.add_parsers(sub, common.add_common, common.settings)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_logging(Settings.from_env())
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

"""``meterline replay-dead-letters``: re-produce a project's dead-lettered originals."""

from __future__ import annotations

import argparse
from typing import Any

from meterline.cli.common import add_common, settings


def cmd_replay(args: argparse.Namespace) -> int:
    from meterline.ops.replay import run_replay

    return run_replay(
        settings(args), project=args.project, error_type=args.reason, dry_run=args.dry_run
    )


def add_parser(sub: Any) -> None:
    replay = sub.add_parser(
        "replay-dead-letters",
        help="re-produce a project's dead-lettered originals to their raw topics "
        "(dedupe keeps it exact)",
    )
    add_common(replay)
    replay.add_argument("--project", required=True, help="the project whose records to replay")
    replay.add_argument(
        "--reason", help="only this error type (e.g. quarantined, unsupported_schema_version)"
    )
    replay.add_argument("--dry-run", action="store_true", help="count, do not produce")
    replay.set_defaults(func=cmd_replay)

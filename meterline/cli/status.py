"""``meterline status``: topics, consumer lag, ClickHouse rows, control-plane version."""

from __future__ import annotations

import argparse
from typing import Any

from meterline.cli.common import add_common, settings


def cmd_status(args: argparse.Namespace) -> int:
    from meterline.ops.status import run_status

    return run_status(settings(args))


def add_parser(sub: Any) -> None:
    status = sub.add_parser(
        "status", help="topics, consumer lag, ClickHouse rows, control-plane version"
    )
    add_common(status)
    status.set_defaults(func=cmd_status)

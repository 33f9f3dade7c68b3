"""``meterline demo``: the pipeline on synthetic agent traffic, then a report."""

from __future__ import annotations

import argparse
from typing import Any

from meterline.cli.common import add_common, settings


def cmd_demo(args: argparse.Namespace) -> int:
    from meterline.demo.run import run_demo

    return run_demo(settings(args), events=args.events)


def add_parser(sub: Any) -> None:
    demo = sub.add_parser("demo", help="run the pipeline on synthetic agent traffic and report")
    add_common(demo)
    demo.add_argument("--events", type=int, default=5_000, help="unique events to send")
    demo.add_argument(
        "--control-plane",
        help="control-plane YAML (env METERLINE_CONTROL_PLANE; default: docs/examples)",
    )
    demo.set_defaults(func=cmd_demo)

"""``meterline worker``: one stream-processor worker."""

from __future__ import annotations

import argparse
from typing import Any


def cmd_worker(args: argparse.Namespace) -> int:
    from meterline.ops.processor import main

    main()
    return 0


def add_parser(sub: Any) -> None:
    worker = sub.add_parser("worker", help="run one stream-processor worker (Faust)")
    worker.set_defaults(func=cmd_worker)

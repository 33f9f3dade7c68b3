"""The billing commands: ``report``, ``sql``, ``backfill``, ``reprice``, ``reconcile`` and
``corrections`` (the work is in :mod:`meterline.billing.commands`)."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path
from typing import Any

from meterline.cli.common import add_common, settings

#: help of ``--wait-s`` (backfill, reprice, corrections)
WAIT_HELP = (
    "seconds to wait for every event given to the pipeline to land in ClickHouse "
    "before refusing (default 60)"
)


def cmd_report(args: argparse.Namespace) -> int:
    from meterline.billing.commands import run_report

    return run_report(settings(args), project=args.project, start=args.start, end=args.end)


def cmd_sql(args: argparse.Namespace) -> int:
    from meterline.billing.commands import run_sql

    return run_sql(settings(args), args.query)


def cmd_backfill(args: argparse.Namespace) -> int:
    from meterline.billing.commands import run_backfill

    return run_backfill(
        settings(args), start=args.start, end=args.end, project=args.project,
        wait_s=args.wait_s,
    )  # fmt: skip


def cmd_reprice(args: argparse.Namespace) -> int:
    from meterline.billing.commands import run_reprice

    return run_reprice(
        settings(args), start=args.start, end=args.end, project=args.project,
        wait_s=args.wait_s,
    )  # fmt: skip


def cmd_reconcile(args: argparse.Namespace) -> int:
    from meterline.billing.commands import run_reconcile

    return run_reconcile(
        settings(args), provider=args.provider, path=args.file, project=args.project,
        threshold_pct=args.threshold_pct, min_usd=args.min_usd,
    )  # fmt: skip


def cmd_corrections(args: argparse.Namespace) -> int:
    from meterline.billing.commands import run_corrections

    return run_corrections(settings(args), wait_s=args.wait_s)


def _control(sp: argparse.ArgumentParser) -> None:
    add_common(sp)
    sp.add_argument("--control-plane", help="control-plane YAML (env METERLINE_CONTROL_PLANE)")


def day(text: str) -> date:
    """A ``YYYY-MM-DD`` flag (argparse names it "day" in its errors)."""
    return date.fromisoformat(text)


def _period(sp: argparse.ArgumentParser) -> None:
    """``--from``/``--to`` (required), ``--project`` and ``--wait-s``."""
    sp.add_argument("--from", dest="start", type=day, required=True)
    sp.add_argument("--to", dest="end", type=day, required=True)
    sp.add_argument("--project", help="only this project")
    sp.add_argument("--wait-s", type=float, default=60.0, help=WAIT_HELP)


def add_parsers(sub: Any) -> None:
    report = sub.add_parser("report", help="print the billing tables from ClickHouse")
    _control(report)
    report.add_argument("--project", help="only this project")
    report.add_argument("--from", dest="start", type=day, help="first day (YYYY-MM-DD)")
    report.add_argument("--to", dest="end", type=day, help="last day (YYYY-MM-DD)")
    report.set_defaults(func=cmd_report)
    sql = sub.add_parser("sql", help="run one SQL query on ClickHouse and print the result")
    add_common(sql)
    sql.add_argument("query", help='e.g. "SELECT * FROM meterline.seats"')
    sql.set_defaults(func=cmd_sql)
    backfill = sub.add_parser(
        "backfill", help="recompute outcomes and seats for a period from ClickHouse events"
    )
    _control(backfill)
    _period(backfill)
    backfill.set_defaults(func=cmd_backfill)
    reprice = sub.add_parser(
        "reprice", help="recompute llm_call costs for a period with the current price book"
    )
    _control(reprice)
    _period(reprice)
    reprice.set_defaults(func=cmd_reprice)
    reconcile = sub.add_parser(
        "reconcile", help="drift per day and model against a provider's cost export file"
    )
    add_common(reconcile)
    reconcile.add_argument("--provider", choices=["openai", "anthropic"], required=True)
    reconcile.add_argument("file", type=Path, help="the provider's cost export (JSON)")
    reconcile.add_argument("--project", help="only this project's events")
    reconcile.add_argument(
        "--threshold-pct",
        type=float,
        default=1.0,
        help="exit 3 when a day and model drift more (default 1%%)",
    )
    reconcile.add_argument(
        "--min-usd",
        type=float,
        default=0.01,
        help="ignore drifts of at most this many USD (default 0.01)",
    )
    reconcile.set_defaults(func=cmd_reconcile)
    corrections = sub.add_parser(
        "corrections",
        help="re-evaluate the trajectories late events asked to correct (outcome_corrections)",
    )
    _control(corrections)
    corrections.add_argument("--wait-s", type=float, default=60.0, help=WAIT_HELP)
    corrections.set_defaults(func=cmd_corrections)

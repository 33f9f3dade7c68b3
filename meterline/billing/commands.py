"""The billing subcommands of ``meterline``: report, sql, backfill, reprice, reconcile,
corrections.

Exit codes: 0 done, 1 ClickHouse refused or is unavailable, or events are not all landed
(backfill, reprice, corrections: nothing written), 2 bad arguments, config or export file,
3 reconcile: a drift over the threshold.
"""

from __future__ import annotations

import dataclasses
import sys
from datetime import date
from pathlib import Path
from typing import Any

from meterline.billing import report
from meterline.billing.backfill import backfill_landed
from meterline.billing.client import open_client
from meterline.billing.corrections import run_once as run_corrections_once
from meterline.billing.display_names import sync_display_names
from meterline.billing.endpoint import RemoteClient
from meterline.billing.errors import BillingError
from meterline.billing.reprice import reprice_landed
from meterline.billing.watermark import Watermark
from meterline.ops.tables import table
from meterline.schemas import ControlPlane
from meterline.settings import Settings
from meterline.sinks.service import clickhouse_writer
from meterline.stream_processors.control_plane import ControlPlaneError, load_control_plane

ALL_TIME = (date(1970, 1, 1), date(2999, 12, 31))


def _fail(message: str, code: int) -> int:
    print(f"meterline: {message}", file=sys.stderr)
    return code


def _config(path: Path | None) -> ControlPlane | None:
    return None if path is None else load_control_plane(path)


def run_report(
    settings: Settings, *, project: str | None, start: date | None, end: date | None
) -> int:
    try:
        config = _config(settings.control_plane)
        client = open_client(settings)
        if not isinstance(client, RemoteClient):  # tables and views exist, names current
            writer = clickhouse_writer(settings.sink_config(), client)
            if config is not None:
                sync_display_names(writer, config)
        found = report.sections(
            client, settings.database, project=project,
            start=start or ALL_TIME[0], end=end or ALL_TIME[1],
        )  # fmt: skip
    except ControlPlaneError as exc:
        return _fail(str(exc), 2)
    except BillingError as exc:
        return _fail(str(exc), 1)
    except Exception as exc:  # clickhouse-connect raises several unrelated types
        return _fail(f"query failed: {exc}", 1)
    print(report.render(found), end="")
    return 0


def run_sql(settings: Settings, sql: str) -> int:
    try:
        result = open_client(settings).query(sql)
    except BillingError as exc:
        return _fail(str(exc), 1)
    except Exception as exc:
        return _fail(f"query failed: {exc}", 1)
    rows: list[tuple[Any, ...]] = [tuple(r) for r in result.result_rows]
    columns = list(result.column_names)
    print(table(columns, rows) if columns else "OK")
    print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return 0


def run_backfill(
    settings: Settings, *, start: date, end: date, project: str | None, wait_s: float = 60.0
) -> int:
    """Refuses (exit 1, nothing written) when records given to the pipeline have not all
    landed in ClickHouse within ``wait_s`` (:mod:`meterline.billing.watermark`)."""
    if settings.control_plane is None:
        return _fail("backfill needs --control-plane or METERLINE_CONTROL_PLANE", 2)
    if end < start:
        return _fail("--to is before --from", 2)
    try:
        config = load_control_plane(settings.control_plane)
        client = open_client(settings)
        if isinstance(client, RemoteClient):  # `meterline up` holds chDB: it runs the backfill
            done = client.call("/backfill", {
                "control_plane": str(settings.control_plane.resolve()),
                "from": start.isoformat(), "to": end.isoformat(), "project": project,
                "wait_s": wait_s,
            })  # fmt: skip
        else:
            writer = clickhouse_writer(settings.sink_config(), client)
            sync_display_names(writer, config)
            watermark = Watermark.from_settings(settings)  # None: no broker, nothing in flight
            result = backfill_landed(writer, config, start, end, project, watermark, wait_s)
            done = {"outcomes": result.outcomes, "retracted": result.retracted,
                    "seat_rows": result.seat_rows}  # fmt: skip
    except ControlPlaneError as exc:
        return _fail(str(exc), 2)
    except BillingError as exc:
        return _fail(str(exc), 1)
    except Exception as exc:
        return _fail(f"backfill failed: {exc}", 1)
    print(
        f"meterline backfill {start}..{end}{f' project {project}' if project else ''}: "
        f"{done['outcomes']} outcomes, {done['retracted']} retracted, "
        f"{done['seat_rows']} seat rows (control plane version {config.version})"
    )
    return 0


def run_reprice(
    settings: Settings, *, start: date, end: date, project: str | None, wait_s: float = 60.0
) -> int:
    """Re-price the period's llm_calls with the current book (the control plane, if any,
    on the pinned genai-prices); refuses like backfill when events have not landed."""
    if end < start:
        return _fail("--to is before --from", 2)
    try:
        config = _config(settings.control_plane)
        client = open_client(settings)
        if isinstance(client, RemoteClient):  # `meterline up` holds chDB: it re-prices
            done = client.call("/reprice", {
                "control_plane": str(settings.control_plane.resolve())
                if settings.control_plane else None,
                "from": start.isoformat(), "to": end.isoformat(), "project": project,
                "wait_s": wait_s,
            })  # fmt: skip
        else:
            writer = clickhouse_writer(settings.sink_config(), client)
            watermark = Watermark.from_settings(settings)
            result = reprice_landed(writer, config, start, end, project, watermark, wait_s)
            done = dataclasses.asdict(result)
    except ControlPlaneError as exc:
        return _fail(str(exc), 2)
    except BillingError as exc:
        return _fail(str(exc), 1)
    except Exception as exc:
        return _fail(f"reprice failed: {exc}", 1)
    print(
        f"meterline reprice {start}..{end}{f' project {project}' if project else ''}: "
        f"{done['calls']} llm calls, {done['repriced']} repriced, {done['unpriced']} still "
        f"unpriced or invalid (price book {done['price_book']})"
    )
    return 0


#: Exit code of ``reconcile`` when a day and model drift over the threshold.
DRIFT_EXIT = 3


def run_reconcile(
    settings: Settings, *, provider: str, path: Path, project: str | None,
    threshold_pct: float, min_usd: float,
) -> int:  # fmt: skip
    """Print the drift per day and model; exit :data:`DRIFT_EXIT` when one is over
    ``threshold_pct`` percent of the billed cost and over ``min_usd``."""
    from meterline.billing.reconcile import ExportError, load_export, reconcile, render

    try:
        billed = load_export(provider, path.read_bytes())  # type: ignore[arg-type]
        drifts = reconcile(open_client(settings), settings.database, provider,  # type: ignore[arg-type]
                           billed, project)  # fmt: skip
    except (OSError, ExportError) as exc:
        return _fail(f"{path}: {exc}", 2)
    except BillingError as exc:
        return _fail(str(exc), 1)
    except Exception as exc:
        return _fail(f"reconcile failed: {exc}", 1)
    print(render(drifts, threshold_pct, min_usd), end="")
    over = [d for d in drifts if d.over(threshold_pct, min_usd)]
    if over:
        return _fail(
            f"{len(over)} day/model rows drift more than {threshold_pct}% and "
            f"${min_usd} from the {provider} export", DRIFT_EXIT,
        )  # fmt: skip
    return 0


def run_corrections(settings: Settings, *, wait_s: float = 60.0) -> int:
    """Answer the pending outcome-correction requests once (``meterline up`` and
    ``meterline sink`` do it every ``METERLINE_RECOMPUTE_INTERVAL_S``)."""
    if settings.control_plane is None:
        return _fail("corrections needs --control-plane or METERLINE_CONTROL_PLANE", 2)
    try:
        config = load_control_plane(settings.control_plane)
        client = open_client(settings)
        if isinstance(client, RemoteClient):
            return _fail("`meterline up` runs on this data dir and answers corrections itself", 1)
        writer = clickhouse_writer(settings.sink_config(), client)
        result = run_corrections_once(writer, config, Watermark.from_settings(settings), wait_s)
    except ControlPlaneError as exc:
        return _fail(str(exc), 2)
    except BillingError as exc:
        return _fail(str(exc), 1)
    except Exception as exc:
        return _fail(f"corrections failed: {exc}", 1)
    print(
        f"meterline corrections: {result.requests} trajectories re-evaluated, "
        f"{result.outcomes} outcomes, {result.retracted} retracted"
    )
    return 0

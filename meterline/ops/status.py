"""``meterline status``: topics, consumer-group lag, ClickHouse row counts, control plane.

Reads what it can and says what it cannot. The embedded default needs care: chDB allows one
process per data path, so while ``meterline up`` runs, ``status`` does not open its ClickHouse;
it reads the rows inserted by that process's sink from its ``/metrics`` endpoint instead, and
finds the embedded broker's address in ``<run dir>/up.json``.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from prometheus_client.parser import text_string_to_metric_families

from meterline.ops.endpoints import read_endpoints
from meterline.ops.lag import OffsetReader
from meterline.settings import Settings
from meterline.sinks import connect, redact_url
from meterline.sinks.clickhouse.identifiers import check_identifier
from meterline.sinks.metrics import TABLES

Out = Callable[[str], None]


def run_status(settings: Settings, out: Out = print, timeout_s: float = 3.0) -> int:
    """Print the status; 0 if Kafka and ClickHouse could be read, else 1."""
    running = read_endpoints(settings.effective_run_dir)
    up = next((e for e in running if e.get("name") == "up"), None)
    bootstrap = settings.kafka_bootstrap or (up or {}).get("kafka_bootstrap")
    ok = True
    out(f"meterline status (data dir {settings.data_dir})")
    out("")
    if bootstrap:
        ok &= _kafka(settings, str(bootstrap), out, timeout_s)
    else:
        out("Kafka: embedded broker not running (start `meterline up`), and no")
        out("       METERLINE_KAFKA_BOOTSTRAP / --kafka-bootstrap given")
        ok = False
    out("")
    ok &= _clickhouse(settings, up, out)
    out("")
    out(f"Control plane: {control_plane_version()}")
    out(f"Price book: {price_book_version()}")
    _unpriced(settings, out)
    if running:
        out("")
        out("Running processes (metrics, /healthz, /readyz):")
        for e in running:
            out(f"  {e['name']:<14} pid {e['pid']:<8} {e['url']}")
    return 0 if ok else 1


def _kafka(settings: Settings, bootstrap: str, out: Out, timeout_s: float) -> bool:
    reader = OffsetReader(bootstrap, timeout_s=timeout_s)
    try:
        ends = reader.end_offsets(settings.topics.all)
        out(f"Kafka {bootstrap}")
        if not ends:
            out("  no meterline topics (run `meterline topics` or `meterline up`)")
            return True
        out(f"  {'topic':<40} {'partitions':>10} {'end offsets':>12}  per partition")
        for topic in settings.topics.all:
            parts = [e for e in ends if e.topic == topic]
            if not parts:
                out(f"  {topic:<40} {'missing':>10}")
                continue
            per = " ".join(str(e.high) for e in parts)
            out(f"  {topic:<40} {len(parts):>10} {sum(e.high for e in parts):>12}  {per}")
        out("")
        out("Consumer-group lag (high watermark - committed offset)")
        for group, topics in (
            (settings.app_id, settings.topics.raw),
            (settings.sink_group, settings.topics.sink_inputs),
        ):
            lags = reader.group_lag(group, topics)
            behind = [f"{t.rsplit('.', 1)[-1]}[{p}]={n}" for t, p, n in lags if n]
            detail = "  ".join(behind) if behind else "all partitions caught up"
            out(f"  {group:<30} total {sum(n for *_, n in lags):>10}  {detail}")
        return True
    except Exception as exc:
        out(f"Kafka {bootstrap}: unreachable ({exc})")
        return False
    finally:
        reader.close()


def _clickhouse(settings: Settings, up: dict[str, Any] | None, out: Out) -> bool:
    url = settings.effective_clickhouse_url
    db = check_identifier(settings.database)
    embedded = urlsplit(url).scheme == "chdb"
    if embedded and up is not None:
        out(f"ClickHouse {redact_url(url)} (chDB) is held by the running `meterline up`")
        out(f"  (pid {up['pid']}); chDB allows one process per data path. Rows inserted by its")
        out("  sink since it started, from its /metrics:")
        try:
            rows = _rows_inserted(str(up["url"]))
        except Exception as exc:
            out(f"  could not read {up['url']}/metrics: {exc}")
            return False
        for table in TABLES:
            out(f"  {db}.{table:<14} {rows.get(table, 0):>12}")
        return True
    if embedded and not Path(urlsplit(url).path).is_dir():
        out(f"ClickHouse {url}: no embedded data yet (nothing has run here)")
        return False
    try:
        client = connect(url)
        counts = [
            (t, int(client.query(f"SELECT count() FROM {db}.{t}").result_rows[0][0]))
            for t in TABLES
        ]
        out(f"ClickHouse {redact_url(url)}  rows per table (before merges; FINAL dedupes)")
        for table, n in counts:
            out(f"  {db}.{table:<14} {n:>12}")
        return True
    except Exception as exc:
        out(f"ClickHouse {redact_url(url)}: not readable ({type(exc).__name__}: {exc})")
        return False


def _rows_inserted(url: str) -> dict[str, int]:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {
        s.labels["table"]: int(s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "meterline_sink_rows_inserted_total"
    }


#: How far back ``status`` looks for unpriced calls.
UNPRICED_DAYS = 31


def _unpriced(settings: Settings, out: Out) -> None:
    """The unpriced models of the last :data:`UNPRICED_DAYS` days (through the running
    ``up``'s query endpoint when it holds chDB)."""
    from meterline.billing.client import open_client

    url = settings.effective_clickhouse_url
    if urlsplit(url).scheme == "chdb" and not Path(urlsplit(url).path).is_dir():
        return
    try:
        client = open_client(settings)
    except Exception as exc:
        out(f"Unpriced models: not readable ({type(exc).__name__}: {exc})")
        return
    print_unpriced(client, settings.database, out)


def print_unpriced(client: Any, database: str, out: Out) -> None:
    """The unpriced-models section of ``status`` from ``client``."""
    from meterline.billing.unpriced import unpriced_models

    since = datetime.now(UTC) - timedelta(days=UNPRICED_DAYS)
    try:
        found = unpriced_models(client, database, since)
    except Exception as exc:
        out(f"Unpriced models: not readable ({type(exc).__name__}: {exc})")
        return
    if not found:
        out(f"Unpriced models (last {UNPRICED_DAYS} days): none")
        return
    out(f"Unpriced models (last {UNPRICED_DAYS} days): add a price, then `meterline reprice`")
    out(f"  {'project':<16} {'provider':<12} {'model':<32} {'status':<14} {'calls':>8} "
        f"{'input tok':>12} {'output tok':>12}")  # fmt: skip
    for m in found:
        out(f"  {m.project:<16} {m.provider or '-':<12} {m.model:<32} {m.status:<14} "
            f"{m.calls:>8} {m.input_tokens:>12} {m.output_tokens:>12}")  # fmt: skip


def price_book_version() -> str:
    """The version this host's price book has (the control plane of
    ``METERLINE_CONTROL_PLANE``, the pinned genai-prices)."""
    from meterline.stream_processors.pricing import book_version

    try:
        from meterline.stream_processors.control_plane.loader import load_from_env

        config = load_from_env()
    except Exception:
        config = None
    return book_version(config)


def control_plane_version() -> str:
    """``version N (path)``, ``none`` when no control plane is configured, or the error."""
    try:
        from meterline.stream_processors.control_plane.loader import (
            control_plane_path,
            load_control_plane,
        )
    except ImportError as exc:  # pyyaml missing
        return f"unknown ({exc})"
    path = control_plane_path()
    if path is None:
        return "none"
    try:
        return f"version {load_control_plane(path).version} ({path})"
    except Exception as exc:
        return f"invalid ({path}): {exc}"

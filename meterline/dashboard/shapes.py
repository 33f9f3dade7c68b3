"""The JSON shapes the page draws: tables of typed columns and time-series charts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from meterline.dashboard.filters import Filters
from meterline.dashboard.source import iso

Panel = dict[str, Any]
#: Charts show this many series; the rest are summed into "other" (the table lists all).
TOP_SERIES = 8


def column(key: str, label: str, fmt: str = "int") -> dict[str, str]:
    """``fmt``: int, usd, pct (a 0..1 ratio), ms or text."""
    return {"key": key, "label": label, "format": fmt}


def table(columns: list[dict[str, str]], rows: Iterable[Iterable[Any]]) -> dict[str, Any]:
    keys = [c["key"] for c in columns]
    return {
        "columns": columns,
        "rows": [dict(zip(keys, map(plain, r), strict=True)) for r in rows],
    }


def series_chart(
    f: Filters, points: Iterable[tuple[Any, str, float]], *, kind: str, unit: str, stacked: bool
) -> dict[str, Any]:
    """A time chart from (bucket, series, value): every bucket of the period, top series."""
    labels = [iso(b) for b in f.bucket_starts()]
    index = {label: i for i, label in enumerate(labels)}
    values: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(labels))
    for bucket, name, value in points:
        i = index.get(iso(bucket))
        if i is not None:
            values[str(name)][i] += float(value)
    ranked = sorted(values, key=lambda n: (-sum(values[n]), n))
    shown = {n: values[n] for n in ranked[:TOP_SERIES]}
    if len(ranked) > TOP_SERIES:
        shown["other"] = [
            sum(values[n][i] for n in ranked[TOP_SERIES:]) for i in range(len(labels))
        ]
    return {
        "type": kind,
        "labels": labels,
        "bucket": f.bucket,
        "unit": unit,
        "stacked": stacked,
        "datasets": [{"label": n, "data": v} for n, v in shown.items()],
    }


def plain(value: Any) -> Any:
    """JSON-friendly: ints stay ints, other numbers become floats (NaN -> None)."""
    if isinstance(value, bool | int | str) or value is None:
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return None if number != number else number

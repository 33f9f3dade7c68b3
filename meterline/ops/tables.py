"""Plain-text tables for the commands' output (``meterline report``, ``sql``, ``demo``)."""

from __future__ import annotations

from typing import Any


def table(headers: list[str], rows: list[tuple[Any, ...]] | list[list[Any]]) -> str:
    """``headers`` and ``rows`` as aligned columns: the first left-aligned, the others right,
    a dashed rule under the headers."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(
            c.rjust(w) if j else c.ljust(w)
            for j, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)

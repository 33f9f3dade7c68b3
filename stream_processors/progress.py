"""Progress bars for long work (``meterline demo``, ``bench/``): rich on a terminal only.

When stdout is not a TTY (tests, CI, pipes) nothing is drawn and the plain output stays
exactly as it was, so whatever parses it keeps working.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Update = Callable[[float], None]


def _noop(_completed: float) -> None:
    return None


@contextmanager
def progress_bar(
    description: str, total: float | None, *, enabled: bool | None = None
) -> Iterator[Update]:
    """Yield ``update(completed)``. ``enabled`` None: only when stdout is a terminal.
    The bar is removed when the block ends (``transient``), leaving the plain output."""
    if not (sys.stdout.isatty() if enabled is None else enabled):
        yield _noop
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, transient=True, refresh_per_second=4) as bar:
        task = bar.add_task(description, total=total)
        yield lambda completed: bar.update(task, completed=completed)

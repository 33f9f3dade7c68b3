"""Progress bars for long work (``meterline demo``, ``bench/``): rich on a terminal only.

When stdout is not a TTY (tests, CI, pipes) nothing is drawn and the plain output stays
exactly as it was, so whatever parses it keeps working. The bar is removed when it closes
(``transient``), so a terminal ends up with the same lines as a pipe.
"""

from __future__ import annotations

import sys
from typing import Any


class ProgressBar:
    """``update(completed)`` while working, ``close()`` after (or use ``with``).
    ``enabled`` None: only when stdout is a terminal."""

    def __init__(self, description: str, total: float | None, *, enabled: bool | None = None):
        self._bar: Any = None
        if not (sys.stdout.isatty() if enabled is None else enabled):
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=True,
            auto_refresh=False,  # no refresh thread: redrawn on update only (bench timings)
        )
        self._task = self._bar.add_task(description, total=total)
        self._bar.start()

    def update(self, completed: float) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=completed, refresh=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

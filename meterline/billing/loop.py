"""Recompute seats (and sync display names, and answer outcome corrections) every few
seconds while the pipeline runs.

Each round recomputes the seat periods that contain yesterday and today (UTC) from the
events in ClickHouse, so seat counts follow activity with a delay of one interval, and runs
a round of :class:`~meterline.billing.corrections.Corrections` (requests are
answered one round after they are seen, once their events have landed). A failing round is
logged and retried next round; it never stops the pipeline.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from meterline.billing.corrections import Corrections
from meterline.billing.display_names import sync_display_names
from meterline.billing.seats import recompute_seats
from meterline.schemas import ControlPlane, utc_now
from meterline.sinks.clickhouse.writer import ClickHouseWriter

log = logging.getLogger(__name__)


class RecomputeLoop:
    def __init__(
        self,
        writer: ClickHouseWriter,
        config: Callable[[], ControlPlane],
        interval_s: float = 60.0,
        corrections: Corrections | None = None,
    ) -> None:
        self.writer, self.config, self.interval_s = writer, config, interval_s
        self.corrections = corrections
        self.rounds = 0
        self.last_error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="meterline-seats", daemon=True)

    def run_once(self) -> None:
        config = self.config()
        today = utc_now().date()
        sync_display_names(self.writer, config)
        recompute_seats(self.writer, config, today - timedelta(days=1), today)
        if self.corrections is not None:
            self.corrections.run_once(config)
        self.rounds += 1

    def _run(self) -> None:
        while True:
            try:
                self.run_once()
                self.last_error = None
            except Exception as exc:
                self.last_error = exc
                log.exception("seat recompute failed; retrying in %.0fs", self.interval_s)
            if self._stop.wait(self.interval_s):
                return

    def start(self) -> RecomputeLoop:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

"""What ``meterline up`` runs beside the sink: the control-plane watcher, the seat
recompute loop (when a control plane is configured) and the local query endpoint (when
ClickHouse is chDB, which other processes cannot open while ``up`` holds it)."""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any

from meterline.billing.backfill import backfill_landed
from meterline.billing.corrections import Corrections
from meterline.billing.endpoint import QueryServer
from meterline.billing.loop import RecomputeLoop
from meterline.billing.reprice import reprice_landed
from meterline.billing.watermark import Watermark
from meterline.settings import Settings
from meterline.sinks.clickhouse.writer import ClickHouseWriter
from meterline.stream_processors.control_plane import ControlPlaneWatcher, load_control_plane


class BillingServices:
    def __init__(self, settings: Settings, writer: ClickHouseWriter) -> None:
        self.settings, self.writer = settings, writer
        self.watcher: ControlPlaneWatcher | None = None
        self.loop: RecomputeLoop | None = None
        self.server: QueryServer | None = None

    def start(self) -> BillingServices:
        s = self.settings
        if s.control_plane is not None:
            watcher = self.watcher = ControlPlaneWatcher(s.control_plane)
            watcher.start()
            corrections = Corrections(self.writer, Watermark.from_settings(s))
            self.loop = RecomputeLoop(
                self.writer, lambda: watcher.current, s.recompute_interval_s, corrections
            ).start()
        if s.effective_clickhouse_url.startswith("chdb://"):
            routes = {"/backfill": self._backfill, "/reprice": self._reprice}
            self.server = QueryServer(self.writer.client, s.data_dir, routes).start()
        return self

    def _backfill(self, body: dict[str, Any]) -> dict[str, Any]:
        """Raises NotLanded (the endpoint answers with its message) before writing
        anything when the pipeline has not landed every event within ``wait_s``."""
        config = load_control_plane(str(body["control_plane"]))
        result = backfill_landed(
            self.writer, config, date.fromisoformat(body["from"]),
            date.fromisoformat(body["to"]), body.get("project") or None,
            Watermark.from_settings(self.settings), float(body.get("wait_s") or 0.0),
        )  # fmt: skip
        return dataclasses.asdict(result)

    def _reprice(self, body: dict[str, Any]) -> dict[str, Any]:
        path = body.get("control_plane")
        config = load_control_plane(str(path)) if path else None
        result = reprice_landed(
            self.writer, config, date.fromisoformat(body["from"]),
            date.fromisoformat(body["to"]), body.get("project") or None,
            Watermark.from_settings(self.settings), float(body.get("wait_s") or 0.0),
        )  # fmt: skip
        return dataclasses.asdict(result)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        if self.loop is not None:
            self.loop.stop()
        if self.watcher is not None:
            self.watcher.stop()

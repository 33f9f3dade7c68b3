"""Processor workers as child processes (``python -m meterline.ops.processor``)."""

from __future__ import annotations

import os
from pathlib import Path

from meterline.embedded.child import ChildProcess
from meterline.settings import Settings


class WorkerProcess(ChildProcess):
    """One Faust worker. Stopped with SIGTERM (Faust commits and leaves the group)."""

    def __init__(self, settings: Settings, index: int, log_dir: Path) -> None:
        super().__init__(log_dir / f"processor-{index}.log")
        self.settings = settings
        self.index = index

    def start(self) -> WorkerProcess:
        env = {**os.environ, **self.settings.to_env()}
        # each worker keeps its own Faust data dir (table stores, lock files)
        env["METERLINE_DATA_DIR"] = str(self.settings.data_dir / f"worker-{self.index}")
        env["METERLINE_WORKER_INDEX"] = str(self.index)  # names its endpoint file ...
        env["METERLINE_RUN_DIR"] = str(self.settings.effective_run_dir)  # ... written here
        if self.settings.metrics_port:  # a fixed port N: the workers take N+1, N+2, ...
            env["METERLINE_METRICS_PORT"] = str(self.settings.metrics_port + 1 + self.index)
        self._spawn(["meterline.ops.processor"], env)
        return self

"""Processor workers as child processes (``python -m stream_processors.worker``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO

from stream_processors.settings import Settings


class WorkerProcess:
    """One Faust worker. Stopped with SIGTERM (Faust commits and leaves the group)."""

    def __init__(self, settings: Settings, index: int, log_dir: Path) -> None:
        self.settings = settings
        self.index = index
        self.log_path = log_dir / f"processor-{index}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        env = {**os.environ, **self.settings.to_env()}
        # each worker keeps its own Faust data dir (table stores, lock files)
        env["METERLINE_DATA_DIR"] = str(self.settings.data_dir / f"worker-{self.index}")
        env["METERLINE_WORKER_INDEX"] = str(self.index)  # names its endpoint file ...
        env["METERLINE_RUN_DIR"] = str(self.settings.effective_run_dir)  # ... written here
        if self.settings.metrics_port:  # a fixed port N: the workers take N+1, N+2, ...
            env["METERLINE_METRICS_PORT"] = str(self.settings.metrics_port + 1 + self.index)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "stream_processors.worker"],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        return self

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no commit, no flush (fault-injection tests; workers whose broker lost
        its state)."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self, timeout_s: float = 20.0) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

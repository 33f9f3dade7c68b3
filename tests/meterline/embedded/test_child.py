from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from meterline.embedded.child import ChildProcess

#: a child that runs until signalled and says so in its log
SERVER = ["http.server", "0", "--bind", "127.0.0.1"]


def _started(child: ChildProcess) -> None:
    child._spawn(SERVER, os.environ)
    deadline = time.monotonic() + 20
    while "Serving HTTP" not in child.log_tail() and time.monotonic() < deadline:
        assert child.alive(), child.log_tail()
        time.sleep(0.05)


def test_stop_sends_sigterm_and_returns_the_exit_code(tmp_path: Path) -> None:
    child = ChildProcess(tmp_path / "logs" / "child.log")
    assert child.stop() is None  # never started
    _started(child)
    assert child.alive() and child.pid
    assert child.stop(timeout_s=20) == -signal.SIGTERM
    assert not child.alive()
    assert "Serving HTTP" in child.log_tail()  # stdout and stderr went to the log


def test_kill_is_sigkill(tmp_path: Path) -> None:
    child = ChildProcess(tmp_path / "child.log")
    _started(child)
    child.kill()
    assert child.returncode == -signal.SIGKILL

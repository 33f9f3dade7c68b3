import logging
import os
import time
from pathlib import Path

import pytest

from meterline.schemas import ControlPlane
from meterline.stream_processors.control_plane import ControlPlaneError, ControlPlaneWatcher

V1 = "version: 1\ndisplay_names: {a: Alpha}\n"
V2 = "version: 2\ndisplay_names: {a: Alpha two}\n"


def write(path: Path, text: str) -> None:
    """Write and move the mtime forward (coarse-mtime filesystems)."""
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def path(tmp_path: Path) -> Path:
    p = tmp_path / "control-plane.yaml"
    write(p, V1)
    return p


def test_swaps_to_a_new_valid_version(path: Path) -> None:
    changes: list[tuple[int, int]] = []
    watcher = ControlPlaneWatcher(
        path, on_change=lambda o, n: changes.append((o.version, n.version))
    )
    assert watcher.current.display_name("a") == "Alpha"
    assert watcher.poll() is False
    write(path, V2)
    assert watcher.poll() is True
    assert watcher.current.display_name("a") == "Alpha two"
    assert changes == [(1, 2)]


def test_invalid_version_is_rejected_and_old_keeps_running(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    watcher = ControlPlaneWatcher(path)
    old = watcher.current
    write(path, "version: 2\noutcome_rules:\n  - id: r\n    name: R\n    steps: [{stauts: x}]\n")
    with caplog.at_level(logging.ERROR):
        assert watcher.poll() is False
    assert watcher.current is old
    assert watcher.last_error is not None
    assert "line 5: outcome_rules[0].steps[0]" in str(watcher.last_error)
    assert "keeping version 1" in caplog.text
    caplog.clear()
    assert watcher.poll() is False  # same bad content: not re-logged
    assert caplog.text == ""
    write(path, V2)  # fixed: adopted
    assert watcher.poll() is True
    assert watcher.current.version == 2 and watcher.last_error is None


@pytest.mark.parametrize("text", ["version: 1\ndisplay_names: {a: Edited}\n", "version: 0\n"])
def test_version_must_increase(path: Path, text: str) -> None:
    watcher = ControlPlaneWatcher(path)
    write(path, text)
    assert watcher.poll() is False
    assert watcher.current.display_name("a") == "Alpha"
    assert watcher.last_error is not None


def test_version_must_increase_message(path: Path) -> None:
    watcher = ControlPlaneWatcher(path)
    write(path, "version: 1\n")
    watcher.poll()
    assert "line ?: version: 1 must be greater than 1" in str(watcher.last_error)


def test_deleted_file_keeps_the_old_version(path: Path) -> None:
    watcher = ControlPlaneWatcher(path)
    path.unlink()
    assert watcher.poll() is False
    assert watcher.current.version == 1


def test_broken_file_at_start_raises(tmp_path: Path) -> None:
    path = tmp_path / "cp.yaml"
    write(path, "version: one\n")
    with pytest.raises(ControlPlaneError, match="line 1: version"):
        ControlPlaneWatcher(path)


def test_background_thread_picks_up_changes(path: Path) -> None:
    seen: list[ControlPlane] = []
    watcher = ControlPlaneWatcher(path, on_change=lambda _old, new: seen.append(new))
    watcher.start(interval_s=0.01)
    try:
        write(path, V2)
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        watcher.stop()
    assert [c.version for c in seen] == [2]

"""Hot reload of the control-plane file by polling (no inotify, no extra dependency).

Contract:

* :attr:`ControlPlaneWatcher.current` is always a valid, immutable ``ControlPlane``;
  a swap is one reference assignment, so a reader sees the old or the new version, never a
  mix. Callers that evaluate a batch should read ``current`` once per batch.
* :meth:`~ControlPlaneWatcher.poll` checks ``(mtime_ns, size)`` first and hashes the file
  only when that changed. A new content is adopted only if it validates **and** its
  ``version`` is greater than the running one. Otherwise it is rejected, logged once per
  content, kept in :attr:`~ControlPlaneWatcher.last_error`, and the old version keeps
  running. An edit that keeps the same version is rejected too: a version identifies one
  content, so two workers cannot run different rules under one number.
* A missing or unreadable file at a poll is logged and the old version keeps running.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from meterline.schemas.control_plane import ControlPlane
from meterline.stream_processors.control_plane.errors import ControlPlaneError, Problem
from meterline.stream_processors.control_plane.loader import parse_control_plane

log = logging.getLogger(__name__)

OnChange = Callable[[ControlPlane, ControlPlane], None]


class ControlPlaneWatcher:
    """Holds the running control plane and swaps it when the file changes validly.

    The first load happens in the constructor and raises :class:`ControlPlaneError`: a
    process does not start on a broken file.
    """

    def __init__(self, path: str | Path, *, on_change: OnChange | None = None) -> None:
        self.path = Path(path)
        self._on_change = on_change
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: ControlPlaneError | None = None
        self._stat = self._fingerprint()
        data = self.path.read_bytes() if self._stat is not None else b""
        self._current = parse_control_plane(data, source=str(self.path))
        self._digest = hashlib.sha256(data).hexdigest()
        self._rejected: str | None = None

    @property
    def current(self) -> ControlPlane:
        return self._current

    def poll(self) -> bool:
        """Check the file once; True when a new version was adopted. Never raises."""
        with self._lock:
            stat = self._fingerprint()
            if stat is None or stat == self._stat:
                return False
            self._stat = stat
            try:
                data = self.path.read_bytes()
            except OSError as exc:
                log.warning("control plane %s: cannot read: %s", self.path, exc)
                return False
            digest = hashlib.sha256(data).hexdigest()
            if digest in (self._digest, self._rejected):
                return False
            return self._try_adopt(data, digest)

    def _try_adopt(self, data: bytes, digest: str) -> bool:
        old = self._current
        try:
            new = parse_control_plane(data, source=str(self.path))
            if new.version <= old.version:
                problem = Problem(
                    None, "version", f"{new.version} must be greater than {old.version}"
                )
                raise ControlPlaneError(str(self.path), [problem])
        except ControlPlaneError as exc:
            self._rejected, self.last_error = digest, exc
            log.error("%s; keeping version %d", exc, old.version)
            return False
        self._current, self._digest, self.last_error = new, digest, None
        log.info("control plane %s: version %d -> %d", self.path, old.version, new.version)
        if self._on_change is not None:
            self._on_change(old, new)
        return True

    def _fingerprint(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def start(self, interval_s: float = 2.0) -> None:
        """Poll in a daemon thread every ``interval_s`` until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(interval_s,), name="control-plane-watcher", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.poll()
            except Exception:  # a callback bug must not kill the watcher
                log.exception("control plane watcher: poll failed")

"""An optional, size-bounded local spool for records the broker did not take.

When a client has a spool (``MeterlineClient(spool_path=...)`` or ``METERLINE_SPOOL_PATH``),
a record whose delivery failed (broker unreachable until ``message.timeout.ms``, or still
undelivered when the process exits after ``shutdown_timeout_s``) is appended to the file as
its redacted wire bytes (one JSON line) instead of being lost; ``stats.spooled`` counts it.
The next client created with the same path re-sends the file in the background, and
``meterline resend-spool PATH`` does it by hand. Re-sent records keep their event ids, so the
pipeline's dedupe counts a record that was in fact delivered twice once.

Bound: ``max_bytes`` (default 64 MiB). A record that does not fit is counted in
``stats.failed`` and reported to ``on_error``, as without a spool.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from meterline.schemas import RawRecord, decode_raw, encode

log = logging.getLogger("producers")

DEFAULT_MAX_BYTES = 64 * 1024 * 1024


class Spool:
    """Append-only JSON-lines file of undelivered records. Thread-safe."""

    def __init__(self, path: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def write(self, record: RawRecord) -> bool:
        """Append ``record``; False when the spool is full or cannot be written."""
        line = encode(record) + b"\n"
        with self._lock:
            try:
                size = self.path.stat().st_size if self.path.exists() else 0
                if size + len(line) > self.max_bytes:
                    return False
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("ab") as f:
                    f.write(line)
                return True
            except OSError as exc:
                log.warning("meterline: cannot write the spool %s: %s", self.path, exc)
                return False

    def take(self) -> tuple[list[RawRecord], Callable[[], None]]:
        """The spooled records and a ``done`` to call once they are delivered or spooled
        again. The file is renamed first (``<name>.<pid>.sending``); ``done`` removes it, so
        a process that dies while re-sending leaves it for the next one (also taken here)."""
        with self._lock:
            files = [p for p in self.path.parent.glob(self.path.name + ".*.sending")
                     if not _alive(p)]
            if self.path.exists():
                taking = self.path.with_name(self.path.name + f".{os.getpid()}.sending")
                os.replace(self.path, taking)
                files.append(taking)
        records: list[RawRecord] = []
        for path in files:
            for n, line in enumerate(path.read_bytes().splitlines()):
                if not line.strip():
                    continue
                try:
                    records.append(decode_raw(line))
                except Exception as exc:  # a torn last line (process killed mid-write)
                    log.warning("meterline: spool %s line %d unreadable: %s", path, n + 1, exc)

        def done() -> None:
            for path in files:
                path.unlink(missing_ok=True)

        return records, done


def _alive(path: Path) -> bool:
    """Whether the process named in ``<name>.<pid>.sending`` is still running."""
    try:
        pid = int(path.name.rsplit(".", 2)[1])
        os.kill(pid, 0)
    except (ValueError, IndexError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def resend(
    path: str | os.PathLike[str], bootstrap_servers: str, *, topic_prefix: str = "meterline",
    timeout: float = 60.0,
) -> tuple[int, int]:
    """Send a spool file's records (as they are: already redacted) and wait for the broker.
    Returns (delivered, failed); failed records are written back to the spool."""
    from meterline.producers.client import MeterlineProducer
    from meterline.schemas import Topics

    spool = Spool(path)
    records, done = spool.take()
    if not records:
        return 0, 0
    failed: list[RawRecord] = []
    producer = MeterlineProducer(bootstrap_servers, topics=Topics(topic_prefix), redactor=None)
    for rec in records:
        producer.send(rec, lambda r, err: failed.append(r) if err is not None else None)
    left = producer.close(timeout)
    if left:
        producer.purge()
    for rec in failed:
        spool.write(rec)
    done()
    return len(records) - len(failed), len(failed)

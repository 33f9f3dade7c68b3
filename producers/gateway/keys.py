"""API keys: created and revoked by ``meterline keys``, checked by the gateway.

Storage: one JSON file (``<data dir>/gateway-keys.json`` by default, mode 0600), written
atomically under an exclusive ``flock`` so the CLI and a running gateway can share it. Only
the SHA-256 of each key is stored: a key is 32 random bytes (it needs no slow hash), and it
is printed once, at creation. A key reads ``mlk_<key id>_<secret>``; the key id is public
(logs, metrics, ``keys list``), the secret is never logged.

Contract: :meth:`KeyStore.refresh` re-reads the file when it changed; the gateway calls it
every ``keys_reload_s`` (1 s), so a key created or revoked while it runs takes effect
within about a second.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

PREFIX = "mlk_"


@dataclass(frozen=True)
class ApiKey:
    """One key's stored form (no secret)."""

    key_id: str
    project: str
    name: str
    sha256: str
    created_at: str
    revoked_at: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(key: str) -> str | None:
    """The key id inside a presented key (None: not shaped like a meterline key)."""
    if not key.startswith(PREFIX):
        return None
    key_id, sep, secret = key[len(PREFIX) :].partition("_")
    return key_id if sep and key_id and secret else None


class KeyStore:
    """The keys file. Reads are lock-free on an in-memory copy; writes lock the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._keys: dict[str, ApiKey] = {}
        self._stamp: tuple[int, int] | None = None
        self.refresh()

    # -- gateway side ------------------------------------------------------------------------

    def refresh(self) -> bool:
        """Re-read the file if it changed since the last read; True if it was re-read."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            changed = self._stamp is not None
            self._keys, self._stamp = {}, None
            return changed
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return False
        self._keys = self._read()
        self._stamp = stamp
        return True

    def authenticate(self, presented: str) -> ApiKey | None:
        """The active key ``presented`` is, else None (unknown, malformed or revoked)."""
        key_id = key_id_of(presented)
        entry = self._keys.get(key_id) if key_id else None
        if entry is None or not entry.active:
            return None
        return entry if hmac.compare_digest(entry.sha256, _digest(presented)) else None

    # -- CLI side ----------------------------------------------------------------------------

    def create(self, project: str, name: str) -> tuple[ApiKey, str]:
        """A new key for ``project``: (stored entry, the key itself, shown only now)."""
        if not project.strip() or any(ord(c) < 32 for c in project):
            raise ValueError("project: must be a non-empty name without control characters")
        key_id = secrets.token_hex(6)
        key = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        entry = ApiKey(key_id, project, name, _digest(key), _now())
        with self._locked() as keys:
            keys[key_id] = entry
        return entry, key

    def revoke(self, key_id: str) -> ApiKey:
        """Mark ``key_id`` revoked (KeyError if there is no such key)."""
        with self._locked() as keys:
            entry = keys[key_id]
            if entry.active:
                entry = keys[key_id] = ApiKey(**{**asdict(entry), "revoked_at": _now()})
        return entry

    def list(self) -> list[ApiKey]:
        self.refresh()
        return sorted(self._keys.values(), key=lambda k: k.created_at)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, ApiKey]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            keys = self._read()
            yield keys
            tmp = self.path.with_name(self.path.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump({"keys": [asdict(k) for k in keys.values()]}, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        self._stamp = None
        self.refresh()

    def _read(self) -> dict[str, ApiKey]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        return {k["key_id"]: ApiKey(**k) for k in data.get("keys", [])}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")

"""Cheap ids and timestamps for the hot path.

``new_id()`` returns 32 hex characters: a random 64-bit per-process prefix (re-drawn in a
forked child) followed by a 64-bit counter. Unique like a uuid4 for metering purposes, and
~10x cheaper (no ``os.urandom`` call per id). ``stable_id`` derives a deterministic id from
a caller's natural key (uuid5), for idempotent re-sends.
"""

from __future__ import annotations

import itertools
import os
import time
import uuid

#: Namespace of deterministic ids (``stable_id``).
METERLINE_NAMESPACE = uuid.UUID("6f1c2d8e-5b7a-4c1e-9a53-0e7d1f6a2b44")

_prefix = os.urandom(8).hex()
_counter = itertools.count(int.from_bytes(os.urandom(4), "big"))


def _reseed() -> None:
    global _prefix, _counter
    _prefix = os.urandom(8).hex()
    _counter = itertools.count(int.from_bytes(os.urandom(4), "big"))


os.register_at_fork(after_in_child=_reseed)


def new_id() -> str:
    """A unique 32-hex-character id (see the module docstring)."""
    return f"{_prefix}{next(_counter) & 0xFFFFFFFFFFFFFFFF:016x}"


def stable_id(*parts: object) -> str:
    """A deterministic event id (uuid5 hex) from a caller's natural key."""
    return uuid.uuid5(METERLINE_NAMESPACE, "\x1f".join(str(p) for p in parts)).hex


_sec = -1
_sec_text = ""
_MILLIS = tuple(f".{i:03d}Z" for i in range(1000))


def iso_z(t: float) -> str:
    """``t`` (epoch seconds) as ``YYYY-MM-DDTHH:MM:SS.mmmZ``; the second is cached."""
    global _sec, _sec_text
    sec = int(t)
    if sec != _sec:
        _sec_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        _sec = sec
    return _sec_text + _MILLIS[int((t - sec) * 1000) % 1000]

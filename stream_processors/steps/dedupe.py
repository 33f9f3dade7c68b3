"""Dedupe step: drop events whose (project, event_id) was already emitted, within a window.

State: 16-byte digests of ``project␟event_id`` grouped in buckets by the event's own time
(``bucket_s``, a day by default). Buckets more than ``window_s`` (7 days by default) older
than the newest event time seen are forgotten. An event older than the window is not
checked here: it passes, and ClickHouse (ReplacingMergeTree on (project, event_id)) absorbs
a repeat. Memory is bounded by the number of distinct events in one window.

Contract: :meth:`DedupeWindow.add` must be called only after the event's output was durably
produced. A crash in between replays the event (at-least-once) and ClickHouse absorbs the
repeat; marking first would lose it instead (OpenMeter #5118, Langfuse #16017).
"""

from __future__ import annotations

from collections.abc import Iterable
from hashlib import blake2b

from schemas.fast_decode import AnyEvent

SEP = "\x1f"
DIGEST_SIZE = 16
DAY_S = 86_400
DEFAULT_WINDOW_S = 7 * DAY_S

#: An admitted event as the window keeps it: (digest, bucket of its event time).
Seen = tuple[bytes, int]


def dedupe_key(event: AnyEvent) -> str:
    """Dedupe scope: one project never suppresses another project's event_id."""
    return f"{event.project}{SEP}{event.event_id}"


def digest(event: AnyEvent) -> bytes:
    return blake2b(dedupe_key(event).encode(), digest_size=DIGEST_SIZE).digest()


def split_digests(blob: bytes) -> Iterable[bytes]:
    """The digests packed in one persisted blob (see :func:`pack`)."""
    return (blob[i : i + DIGEST_SIZE] for i in range(0, len(blob), DIGEST_SIZE))


def pack(digests: Iterable[bytes]) -> bytes:
    return b"".join(digests)


class DedupeWindow:
    """In-memory window of emitted events, rebuilt from persisted blobs after a restart."""

    def __init__(self, window_s: int = DEFAULT_WINDOW_S, bucket_s: int = DAY_S) -> None:
        if window_s < bucket_s:
            raise ValueError("the dedupe window must be at least one bucket long")
        self.window_s = window_s
        self.bucket_s = bucket_s
        self._buckets: dict[int, set[bytes]] = {}
        self._newest_bucket = 0
        self.duplicates = 0
        self.outside_window = 0

    def bucket_of(self, event: AnyEvent) -> int:
        return int(event.timestamp.timestamp()) // self.bucket_s

    @property
    def oldest_bucket(self) -> int:
        """Events in older buckets are outside the window."""
        return self._newest_bucket - self.window_s // self.bucket_s

    def is_duplicate(self, event: AnyEvent, in_flight: set[bytes]) -> bool:
        """True if already emitted, or already accepted earlier in the same batch."""
        return self.admit(event, in_flight) is None

    def admit(self, event: AnyEvent, in_flight: set[bytes]) -> Seen | None:
        """None if already emitted or accepted earlier in the same batch; else the event is
        added to ``in_flight`` and its (digest, bucket) returned, for
        :meth:`~stream_processors.dedupe_store.PersistentDedupe.mark_seen` to persist
        without computing them again."""
        d = digest(event)
        if d in in_flight:
            self.duplicates += 1
            return None
        bucket = self.bucket_of(event)
        if bucket < self.oldest_bucket:
            self.outside_window += 1  # ClickHouse is the backstop for these
        elif d in self._buckets.get(bucket, ()):
            self.duplicates += 1
            return None
        in_flight.add(d)
        return d, bucket

    def add(self, bucket: int, digests: Iterable[bytes]) -> None:
        self._buckets.setdefault(bucket, set()).update(digests)
        self._newest_bucket = max(self._newest_bucket, bucket)

    def expire(self) -> list[int]:
        """Forget buckets that fell out of the window; return them (to delete their blobs)."""
        old = [b for b in self._buckets if b < self.oldest_bucket]
        for b in old:
            del self._buckets[b]
        return old

    def clear(self) -> None:
        self._buckets.clear()
        self._newest_bucket = 0

    def __len__(self) -> int:
        return sum(len(s) for s in self._buckets.values())

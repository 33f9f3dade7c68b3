"""Dedupe step: drop events whose (project, event_id) was already admitted, within a window.

Which copy wins: the first admitted. A later copy with the same ``(project, event_id)`` is
dropped (counted in :attr:`DedupeWindow.duplicates`) whatever its timestamp, bytes or
content, as long as the first was admitted less than ``window_s`` ago.

The window runs on processing time, not event time: each admitted event is remembered, as a
16-byte digest of ``project␟event_id``, in the bucket (``bucket_s``, a day by default) of
the time it was admitted, and a bucket is forgotten once it is more than ``window_s`` (7 days
by default) older than the current one. So a retry dated the next day, or a re-run days
later, is checked against every event of the window, and an event's own timestamp (which a
producer chooses) can neither hide a repeat nor expire the window. A digest is remembered
between ``window_s`` and ``window_s + bucket_s``. Memory is bounded by the number of
distinct events admitted in one window.

Contract: :meth:`DedupeWindow.add` must be called only after the event's output was durably
produced. A crash in between replays the event (at-least-once) and ClickHouse absorbs the
repeat; marking first would lose it instead (OpenMeter #5118, Langfuse #16017).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from hashlib import blake2b

from meterline.schemas.fast_decode import AnyEvent

SEP = "\x1f"
DIGEST_SIZE = 16
DAY_S = 86_400
DEFAULT_WINDOW_S = 7 * DAY_S

#: An admitted event as the window keeps it: (digest, bucket of the time it was admitted).
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
    """In-memory window of admitted events, rebuilt from persisted blobs after a restart.

    ``clock``: processing time in epoch seconds (the processor also passes its batch's clock
    read to :meth:`advance`, so one batch uses one bucket).
    """

    def __init__(
        self,
        window_s: int = DEFAULT_WINDOW_S,
        bucket_s: int = DAY_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if window_s < bucket_s:
            raise ValueError("the dedupe window must be at least one bucket long")
        self.window_s = window_s
        self.bucket_s = bucket_s
        self.clock = clock
        # one lookup per event, whatever bucket the first copy is in; the per-bucket lists
        # say what to forget when a bucket expires
        self._seen: dict[bytes, int] = {}
        self._buckets: dict[int, list[bytes]] = {}
        self._bucket = int(clock()) // bucket_s
        self.duplicates = 0
        self.expired = 0

    @property
    def bucket(self) -> int:
        """The bucket events admitted now are remembered in."""
        return self._bucket

    @property
    def oldest_bucket(self) -> int:
        """Older buckets are outside the window."""
        return self._bucket - self.window_s // self.bucket_s

    def advance(self, now: float | None = None) -> None:
        """Move the window to processing time ``now`` (default: the clock); never back."""
        bucket = int(self.clock() if now is None else now) // self.bucket_s
        if bucket > self._bucket:
            self._bucket = bucket

    def admit(self, event: AnyEvent, in_flight: set[bytes]) -> Seen | None:
        """None if already marked or accepted earlier in the same batch; else the event is
        added to ``in_flight`` and its (digest, bucket) returned, for
        :meth:`~meterline.stream_processors.state.dedupe.PersistentDedupe.mark_seen` to persist
        without computing them again."""
        d = digest(event)
        if d in in_flight or d in self._seen:
            self.duplicates += 1
            return None
        in_flight.add(d)
        return d, self._bucket

    def add(self, bucket: int, digests: Iterable[bytes]) -> None:
        """Remember ``digests`` as admitted in ``bucket``. A digest added again is kept in
        the bucket added last (add older buckets first, as a rebuild does)."""
        if not isinstance(digests, list):
            digests = list(digests)
        self._seen.update(dict.fromkeys(digests, bucket))
        self._buckets.setdefault(bucket, []).extend(digests)
        if bucket > self._bucket:
            self._bucket = bucket

    def expire(self) -> list[int]:
        """Forget buckets that fell out of the window; return them (to delete their blobs)."""
        oldest = self.oldest_bucket
        old = [b for b in self._buckets if b < oldest]
        seen = self._seen
        for b in old:
            for d in self._buckets.pop(b):
                if seen.get(d) == b:  # not re-admitted in a newer bucket
                    del seen[d]
                    self.expired += 1
        return old

    def clear(self) -> None:
        self._seen.clear()
        self._buckets.clear()
        self.advance()

    def __len__(self) -> int:
        return len(self._seen)

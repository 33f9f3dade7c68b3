"""Persistence of the dedupe window in a Faust table, one changelog record per batch.

A per-event table write would cost one changelog message per event (tripling the broker's
traffic: measured as the processor's bottleneck). Instead each batch writes, per source
partition and bucket of admission (processing) time, one blob of 16-byte digests under the
key ``"<partition>/<bucket>/<last offset>"``. After recovery (restart, rebalance) the
in-memory window is rebuilt from the table, every bucket of the window, whatever the events'
own timestamps; expired buckets are deleted (tombstones) so the compacted changelog stays
bounded by the window. A blob holds at most ``max_digests`` digests (one Kafka message): a
larger group is written as several, keys ``".../<last offset>/<n>"``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from meterline.stream_processors.state.changelog import Changelog
from meterline.stream_processors.steps.dedupe import DedupeWindow, Seen, pack, split_digests


def _anywhere(_partition: int) -> AbstractContextManager[None]:
    return nullcontext()


class PersistentDedupe:
    def __init__(
        self, table: Any, window: DedupeWindow, changelog: Changelog | None = None,
        max_digests: int = 50_000,
    ) -> None:  # fmt: skip
        self.table = table
        self.window = window
        self.max_digests = max_digests
        self._send: Callable[[int, str, bytes | None], Any] = (
            changelog.send if changelog is not None else table.send_changelog
        )

    def rebuild(self) -> int:
        """Reload the window from every blob in the local table store; returns keys loaded."""
        self.window.clear()
        data = self.table.data
        blobs = [(int(str(key).split("/")[1]), bytes(blob)) for key, blob in data.items()]
        for bucket, blob in sorted(blobs, key=lambda kb: kb[0]):  # a repeat keeps the newest
            self.window.add(bucket, list(split_digests(blob)))
        self.expire()
        return len(self.window)

    def mark_seen(
        self,
        accepted: list[tuple[int, int, Seen]],
        in_partition: Callable[[int], AbstractContextManager[None]] = _anywhere,
    ) -> None:
        """Remember the events of ``(partition, offset, (digest, bucket))`` triples, as
        :meth:`DedupeWindow.admit` returned them, once their output is acknowledged.

        ``in_partition(p)`` enters the context in which the store may write partition ``p``
        (Faust's RocksDB store picks the partition database from the current event).
        """
        groups: dict[tuple[int, int], list[bytes]] = defaultdict(list)
        last: dict[tuple[int, int], int] = {}
        for partition, offset, (d, bucket) in accepted:
            gk = (partition, bucket)
            groups[gk].append(d)
            last[gk] = max(offset, last.get(gk, -1))
        most = self.max_digests
        for (partition, bucket), digests in groups.items():
            key = f"{partition}/{bucket}/{last[(partition, bucket)]}"
            for n, start in enumerate(range(0, len(digests), most)):
                part = f"{key}/{n}" if n else key
                blob = pack(digests[start : start + most])
                with in_partition(partition):
                    self.table.data[part] = blob
                self._send(partition, part, blob)
            self.window.add(bucket, digests)
        self.expire()

    def expire(self) -> None:
        expired = set(self.window.expire())
        if not expired:
            return
        for key in list(self.table.data.keys()):
            partition, bucket = str(key).split("/")[:2]
            if int(bucket) in expired:
                del self.table.data[key]
                self._send(int(partition), key, None)

"""Offset commits that never pass a record the agent has not acknowledged.

Faust's consumer commits, per partition, the first run of consecutive acknowledged offsets
after the committed offset ``C`` (the *next* record to process). Three ways it passes a
record that was never processed:

1. Its head check ``min(acked) - committed > 1`` (loosened for compacted topics, #378) lets
   ``C+1, C+2, ...`` commit past an unacknowledged ``C`` (open upstream as #606;
   ``tests/stream_processors/faust_layer/test_commits.py`` shows it on the installed Faust).
2. It fills *gaps* it infers from the fetched offsets (an offset more than one above the
   read offset) as if acknowledged. Around a rebalance the read offset can be stale (Faust
   resumes stream partitions before seeking them to the committed offsets, and its fetch
   loop writes read offsets after a seek), so records that exist count as a gap.
3. Between a revoke and the seek that follows the next assignment the committed offset is
   unknown (None), and Faust then commits whatever run of acknowledged offsets it has.

:class:`StrictCommits` commits only through ``C``'s own acknowledgement or a gap *proven*
from the log: it holds while ``C`` is unacknowledged, records no inferred gaps (Faust's
``_add_gap``; :mod:`.fetch_audit` logs them), and holds a partition whose committed offset
is unknown until the seek after its assignment (after that seek, unknown means "never
committed": the group reads from the earliest offset, so the head is 0).

A hold that lasts ``RESOLVE_AFTER_S`` (``METERLINE_COMMIT_RESOLVE_AFTER_S``) with record
``C`` not in flight is resolved from the log (:meth:`first_offset_from`, a plain fetch
outside the group): if the first record at or after ``C`` lies past it, ``C`` up to that
record is absent (retention, transaction markers) and becomes a proven gap the commit
passes; if ``C`` is there, it was taken from the partition and lost inside this process
(seen in the 200,000-event kill test right after a restart: ``telemetry[3]@51`` never
processed, every later record processed) and nothing would deliver it again before the next
restart, so the partition is *re-read from C*, as a restart would: the records after ``C``
come again and the dedupe window drops them. At most
``MAX_REREADS`` re-reads per held offset, then an error is logged and the partition stays
held (its lag grows): the safe failure for billing data.

The same hold covers a partition read past ``C`` with *nothing* acknowledged and ``C`` not in
flight (seen after a kill -9 and restart: ``telemetry[1]`` committed at 15, read to 25, no
record of it ever reached the agent). Faust only asks partitions with acknowledgements for
an offset to commit, so such a partition would never be looked at and never move again:
:meth:`_filter_tps_with_pending_acks` adds every partition read past its committed offset.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

#: A commit held this long at the same offset, with that record not in flight, is resolved
#: from the log: a proven gap, or a re-read of the partition.
RESOLVE_AFTER_S = 30.0
#: Re-reads per held offset before giving up.
MAX_REREADS = 3


class StrictCommits:
    """Mixin for a Faust consumer (before it in the bases)."""

    _acked: Any
    _committed_offset: Any
    _gap: Any
    _unacked_messages: Any

    clock = staticmethod(time.monotonic)
    resolve_after_s: float = RESOLVE_AFTER_S

    def _state(self, name: str, factory: Any) -> Any:
        return self.__dict__.setdefault(name, factory())

    def freeze_commits(self, reason: str) -> None:
        """Commit nothing more in this process. For an agent that failed mid-take: Faust's
        ``take_events`` acknowledges every event of the take in a ``finally``, processed or
        not, and commits when an agent fails; the next owner replays from the last commit."""
        if not self.__dict__.get("_frozen"):
            log.warning("offset commits frozen: %s", reason)
        self.__dict__["_frozen"] = True

    def _filter_tps_with_pending_acks(self, topics: Any = None) -> Any:
        """Faust's partitions with acknowledgements, and every partition read past its
        committed offset (so that one whose records never reach the agent is held and
        resolved, not forgotten)."""
        tps = list(super()._filter_tps_with_pending_acks(topics))  # type: ignore[misc]
        known = set(tps)
        for tp, offset in list(getattr(self, "_read_offset", {}).items()):
            if offset is None or tp in known or not self._acks_enabled(tp):
                continue  # changelogs (no acknowledgements) are never held
            if topics is None or tp in topics or tp.topic in topics:
                tps.append(tp)
        return iter(tps)

    def _acks_enabled(self, tp: Any) -> bool:
        """Does Faust acknowledge ``tp``'s records (a stream's source topic, not a table's
        changelog)?"""
        app = getattr(self, "app", None)
        return app is not None and bool(app.topics.acks_enabled_for(tp.topic))

    def _head(self, tp: Any) -> int | None:
        """The committed offset ``C`` (the next record to process), None while unknown."""
        committed: int | None = self._committed_offset[tp]
        if committed is None and tp in self._state("_seeked", set):
            return 0  # never committed: the group reads from the earliest offset
        return committed  # None: between assignment and seek, the head is not known yet

    def _new_offset(self, tp: Any) -> int | None:
        if self.__dict__.get("_frozen"):
            return None
        acked = self._acked[tp]
        committed = self._head(tp)
        if committed is None:
            return None
        if not acked:
            read = getattr(self, "_read_offset", {}).get(tp)
            if read is not None and read > committed and self._acks_enabled(tp):
                # read past C, nothing acknowledged: held and resolved like any other hold
                self._held(tp, committed, read, 0)
            return None
        if min(acked) > committed:
            gap = self._gap.get(tp)
            if not (gap and gap.at(committed)):  # only proven gaps (see _resolve)
                self._held(tp, committed, min(acked), len(acked))
                return None  # record `committed` is not acknowledged yet: wait for it
        return super()._new_offset(tp)  # type: ignore[misc, no-any-return]

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        """Faust's inferred gaps are not evidence (stale read offsets make them up); a held
        commit is resolved from the log instead (:meth:`_resolve`)."""

    async def perform_seek(self) -> None:
        await super().perform_seek()  # type: ignore[misc]
        self._state("_seeked", set).update(self.assignment())  # type: ignore[attr-defined]

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self._state("_seeked", set).difference_update(revoked)
        await super().on_partitions_revoked(revoked)  # type: ignore[misc]

    def first_offset_from(self, tp: Any, offset: int) -> int | None:
        """The offset of the first record at or after ``offset`` in ``tp``'s log, read
        outside the group (blocking; None: unknown). Without a way to read the log, None:
        a held commit is then only ever re-read."""
        return None

    def _held(self, tp: Any, committed: int, first_acked: int, n_acked: int) -> None:
        """Called on each commit round that holds ``tp`` at ``committed``."""
        holds: dict[Any, tuple[int, float, int]] = self._state("_holds", dict)
        now = self.clock()
        offset, since, rereads = holds.get(tp, (-1, now, 0))
        if offset != committed:
            holds[tp] = (committed, now, 0)
            return
        busy: dict[Any, asyncio.Future[Any]] = self._state("_resolving", dict)
        if now - since < self.resolve_after_s or tp in busy or self._in_flight(tp, committed):
            return
        if rereads >= MAX_REREADS:
            if rereads == MAX_REREADS:
                log.error(
                    "%s: commit held at offset %d after %d re-reads: that record never came; "
                    "the partition stays held (lag grows) until it is dealt with",
                    tp, committed, rereads,
                )  # fmt: skip
                holds[tp] = (committed, since, rereads + 1)
            return
        if n_acked:
            log.warning(
                "%s: commit held at offset %d for %.0f s: that record is not acknowledged (%d "
                "later ones are, first %d); resolving it from the log",
                tp, committed, now - since, n_acked, first_acked,
            )  # fmt: skip
        else:
            log.warning(
                "%s: commit held at offset %d for %.0f s: the partition was read to offset %d "
                "and none of it was acknowledged or is in flight; resolving it from the log",
                tp, committed, now - since, first_acked,
            )  # fmt: skip
        holds[tp] = (committed, now, rereads)
        task = asyncio.ensure_future(self._resolve(tp, committed))
        busy[tp] = task
        task.add_done_callback(lambda t: self._resolved(tp, t))

    async def _resolve(self, tp: Any, offset: int) -> None:
        """A proven gap if the log lacks ``offset``; else a re-read from it."""
        first = await asyncio.to_thread(self.first_offset_from, tp, offset)
        if first is not None and first > offset:
            log.warning(
                "%s: offsets %d-%d are not in the log: committing past them",
                tp, offset, first - 1,
            )  # fmt: skip
            gap = self._gap[tp]
            gap.addi(offset, first)
            gap.merge_overlaps()
            return
        holds = self._state("_holds", dict)
        held, since, rereads = holds.get(tp, (offset, self.clock(), 0))
        if held == offset:
            holds[tp] = (held, since, rereads + 1)
        log.warning("%s: record %d is in the log: re-reading the partition from it", tp, offset)
        await self.seek(tp, offset)  # type: ignore[attr-defined]

    def _resolved(self, tp: Any, task: asyncio.Future[Any]) -> None:
        self._state("_resolving", dict).pop(tp, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: resolving a held commit failed: %r", tp, task.exception())

    def _in_flight(self, tp: Any, offset: int) -> bool:
        """Is the record at ``offset`` delivered to the agent and not yet acknowledged?"""
        return any(m.tp == tp and m.offset == offset for m in list(self._unacked_messages))

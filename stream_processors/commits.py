"""Offset commits that never pass a record the agent has not acknowledged.

Faust's consumer commits, per partition, the first run of consecutive acknowledged offsets.
Its guard against an unacknowledged record at the head of that run (faust-streaming #312)
was loosened for compacted topics (#378) to ``min(acked) - committed > 1``, and reads the
committed offset as falsy when it is 0 or unknown. With the committed offset ``C`` being the
*next* record to process, acknowledged offsets ``C+1, C+2, ...`` then commit past ``C``
although record ``C`` was never acknowledged (open upstream as #606): after a crash the
next owner resumes after it and the record is never processed. In the 200,000-event kill
test a whole raw message (85 trajectory records) went unprocessed this way, as far as we
can tell (docs/architecture.md, Guarantee).

:class:`StrictCommits` holds the commit of a partition while record ``C`` is neither
acknowledged nor inside a gap Faust saw in the fetched offsets (compaction, transaction
markers, a reset past retention): it waits for that record instead. Faust's own computation
runs otherwise. The price: were record ``C`` really absent from the log while ``C+1`` is
there (a single transaction marker right at the committed offset; meterline's producers are
idempotent, not transactional), the partition would stop committing and its lag would grow,
where Faust would skip it. Holding is the safe failure for billing data.

A hold that lasts means record ``C`` was taken from the partition and lost inside this
process: never delivered to the agent, or delivered and dropped unacknowledged (seen in the
200,000-event kill test right after a restart, while Faust resumes the stream partitions
before it seeks them to their committed offsets). Nothing would ever deliver it again
before the next restart, so after ``REREAD_AFTER_S`` the partition is *re-read from C*, as
a restart would: the records after ``C`` come again and are dropped by the dedupe window
(trajectory records re-apply in order). At most ``MAX_REREADS`` times per held offset, then
an error is logged and the partition stays held (a record truly missing from the log).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

#: A commit held this long at the same offset, with that record not in flight, re-reads the
#: partition from it.
REREAD_AFTER_S = 30.0
#: Re-reads per held offset before giving up (the record is then taken to be absent).
MAX_REREADS = 3


class StrictCommits:
    """Mixin for a Faust consumer (before it in the bases): the head check of
    ``_new_offset``, strict, and the re-read of a partition whose head record was lost."""

    _acked: Any
    _committed_offset: Any
    _gap: Any
    _unacked_messages: Any

    clock = staticmethod(time.monotonic)

    def _new_offset(self, tp: Any) -> int | None:
        acked = self._acked[tp]
        committed = self._committed_offset[tp]
        if acked and committed is not None and min(acked) > committed:
            gap = self._gap.get(tp)
            # Faust records a gap after a seek from the offset after the seek position, so
            # a gap starting at `committed + 1` says record `committed` is missing too
            if not (gap and (gap.at(committed) or gap.at(committed + 1))):
                self._held(tp, committed, min(acked), len(acked))
                return None  # record `committed` is not acknowledged yet: wait for it
        return super()._new_offset(tp)  # type: ignore[misc, no-any-return]

    def _held(self, tp: Any, committed: int, first_acked: int, n_acked: int) -> None:
        """Called on each commit round that holds ``tp`` at ``committed``: re-read the
        partition from there once the hold has lasted ``REREAD_AFTER_S`` and the record is
        not being processed."""
        holds: dict[Any, tuple[int, float, int]] = self.__dict__.setdefault("_holds", {})
        now = self.clock()
        offset, since, rereads = holds.get(tp, (-1, now, 0))
        if offset != committed:
            holds[tp] = (committed, now, 0)
            return
        if now - since < REREAD_AFTER_S or self._in_flight(tp, committed):
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
        log.warning(
            "%s: commit held at offset %d for %.0f s: that record was taken and never "
            "acknowledged (%d later ones are, first %d); re-reading the partition from it",
            tp, committed, now - since, n_acked, first_acked,
        )  # fmt: skip
        holds[tp] = (committed, now, rereads + 1)
        self._reread(tp, committed)

    def _in_flight(self, tp: Any, offset: int) -> bool:
        """Is the record at ``offset`` delivered to the agent and not yet acknowledged?"""
        return any(m.tp == tp and m.offset == offset for m in list(self._unacked_messages))

    def _reread(self, tp: Any, offset: int) -> None:
        """Seek ``tp`` back to ``offset`` (Faust's seek: the fetch position and the read
        offset), in the background: commit rounds are not the place to wait for it."""
        task = asyncio.ensure_future(self.seek(tp, offset))  # type: ignore[attr-defined]
        tasks: set[asyncio.Future[Any]] = self.__dict__.setdefault("_reread_tasks", set())
        tasks.add(task)
        task.add_done_callback(self._reread_done)

    def _reread_done(self, task: asyncio.Future[Any]) -> None:
        self.__dict__.get("_reread_tasks", set()).discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("re-read seek failed: %r", task.exception())

"""Warnings for what Faust's fetch loop does silently to records of acknowledged topics.

Faust's consumer keeps a *read offset* per partition (the last record handed to the
streams, or the seek position) and, for every fetched record (``_drain_messages``):

- drops it when its offset is *below* the read offset (logged at Faust's "dev" level, below
  debug): a record the agent never sees, though it was never processed either unless the
  read offset was right. Seen after a restart in the 200,000-event kill test: the seek to
  the committed offset reset the read offset, then the fetch loop wrote the offset of a
  record fetched before the seek over it, and the re-fetched records from the committed
  offset on were all dropped. On acknowledged topics :class:`FetchAudit` clears the read
  offset instead, so Faust delivers the record: at worst a duplicate, which the dedupe
  window drops (and trajectory records re-apply in order);
- records a *gap* when its offset is more than one *above* the read offset: the offsets in
  between count as absent (compaction, transaction markers), and Faust's commit passes them
  without their acknowledgement. The worker's consumer records no such gaps
  (:mod:`.commits`: a held commit is resolved from the log instead).

On meterline's raw topics (not compacted, no transactions) neither should happen. Either
means a record may have been taken and not processed: the commit then holds and is
resolved (:mod:`.commits`). :class:`FetchAudit` logs both as warnings, at most once per
partition every ``EVERY_S`` seconds, so that the cause is visible where it starts.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any

log = logging.getLogger(__name__)

EVERY_S = 60.0

#: Fault injection, for tests only: ``<topic>:<partition or *>:<offset>``. Each matching
#: fetched record is swallowed once before Faust sees it, the way Faust's own fetch loop can
#: lose one around a rebalance; :mod:`.commits` must then recover it.
FAULT_ENV = "METERLINE_FAULT_LOSE_FETCHED"
#: Fault injection, for tests only: ``N``, the first N resumes of stream (non-changelog)
#: partitions are ignored, so they stay paused after the first recovery -- the stall a worker
#: showed after a crash and restart; :mod:`.stall` must notice and resume it (N = 2: its
#: first resume is ignored too, and it must rejoin the group).
PAUSE_FAULT_ENV = "METERLINE_FAULT_STAY_PAUSED"


def _fault() -> tuple[str, int | None, int] | None:
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return None
    topic, partition, offset = spec.rsplit(":", 2)
    log.warning("fault injection: losing fetched records %s once", spec)
    return topic, None if partition == "*" else int(partition), int(offset)


class FetchAudit:
    """Mixin for a Faust consumer (before it in the bases): audits ``getmany``, and delivers
    what Faust would drop below a stale read offset."""

    _read_offset: Any
    app: Any

    _audit_last: dict[tuple[Any, str], float]
    #: records fetched so far, every topic (a progress count for :mod:`.stall`)
    fetched_records: int = 0

    async def _wait_next_records(self, timeout: float) -> tuple[Any, Any]:
        records, active = await super()._wait_next_records(timeout)  # type: ignore[misc]
        if records:
            self.fetched_records += sum(map(len, records.values()))
        return records, active

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
        read = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        fault = self.__dict__.setdefault("_fault", _fault())
        async for tp, message in super().getmany(timeout):  # type: ignore[misc]
            r_offset = read.get(tp)
            offset = message.offset
            if fault is not None and self._lose(fault, tp, offset):
                continue
            odd = r_offset is not None and (offset < r_offset or offset > r_offset + 1)
            if odd and acks_enabled_for(message.topic):
                self._audit(tp, offset, r_offset)
                if offset < r_offset:  # a stale read offset: deliver it, not drop it
                    read[tp] = None
            yield tp, message

    def resume_partitions(self, tps: Any) -> None:
        tps = set(tps)
        kept = self.__dict__.get("_kept_paused", 0)
        if kept < int(os.environ.get(PAUSE_FAULT_ENV) or 0):
            streams = {tp for tp in tps if not self._is_changelog_tp(tp)}  # type: ignore[attr-defined]
            if streams:
                self.__dict__["_kept_paused"] = kept + 1
                log.warning("fault injection: stream partitions stay paused: %s", sorted(streams))
                tps -= streams
        super().resume_partitions(tps)  # type: ignore[misc]

    def _lose(self, fault: tuple[str, int | None, int], tp: Any, offset: int) -> bool:
        topic, partition, at = fault
        lost: set[Any] = self.__dict__.setdefault("_lost", set())
        if offset != at or tp.topic != topic or partition not in (None, tp.partition):
            return False
        if tp in lost:
            return False
        lost.add(tp)
        log.warning("fault injection: lost fetched record %s@%d", tp, offset)
        return True

    def _audit(self, tp: Any, offset: int, r_offset: int) -> None:
        kind = "dropped" if offset < r_offset else "gap"
        now = time.monotonic()
        last = self.__dict__.setdefault("_audit_last", {})
        if now - last.get((tp, kind), -EVERY_S) < EVERY_S:
            return
        last[(tp, kind)] = now
        if kind == "dropped":
            log.warning(
                "%s: fetched offset %d is below the read offset %d: delivered (Faust would "
                "drop it unseen)",
                tp, offset, r_offset,
            )  # fmt: skip
        else:
            log.warning(
                "%s: fetched offset %d after read offset %d: offsets %d-%d skipped (Faust "
                "would count them as a gap; the commit holds for them instead)", tp, offset,
                r_offset, r_offset + 1, offset - 1,
            )  # fmt: skip

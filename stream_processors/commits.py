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
"""

from __future__ import annotations

from typing import Any


class StrictCommits:
    """Mixin for a Faust consumer (before it in the bases): the head check of
    ``_new_offset``, strict."""

    _acked: Any
    _committed_offset: Any
    _gap: Any

    def _new_offset(self, tp: Any) -> int | None:
        acked = self._acked[tp]
        committed = self._committed_offset[tp]
        if acked and committed is not None and min(acked) > committed:
            gap = self._gap.get(tp)
            # Faust records a gap after a seek from the offset after the seek position, so
            # a gap starting at `committed + 1` says record `committed` is missing too
            if not (gap and (gap.at(committed) or gap.at(committed + 1))):
                return None  # record `committed` is not acknowledged yet: wait for it
        return super()._new_offset(tp)  # type: ignore[misc, no-any-return]

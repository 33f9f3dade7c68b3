"""How the join merges trajectory records, on their JSON form (``model_dump(mode="json")``):
what the ``trajectories`` table keeps and the processor emits, without building models.

A record changes only the fields it sets to a value: later non-null fields win, the earliest
``started_at`` is kept, and ``metadata`` is the union (the later record's keys win) within
bounds (:class:`~meterline.stream_processors.sizes.StateBounds`): a merged trajectory's
``metadata`` holds at most ``metadata_keys`` keys and ``metadata_bytes`` bytes of JSON (its
other fields are ids and times, bounded by the schema). Keys already held stay; a new key
that would cross a bound is dropped, and the merged metadata says how many were dropped so
far under :data:`TRUNCATED_KEY`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
import orjson

from meterline.schemas import TrajectoryRecord
from meterline.schemas.fast_decode import AnyTrajectory
from meterline.stream_processors.sizes import StateBounds

#: Metadata key of a merged trajectory whose metadata lost keys to the bounds: how many.
TRUNCATED_KEY = "meterline_metadata_truncated"
DEFAULT_BOUNDS = StateBounds()
_MISSING = object()


def _size(value: Any) -> int:
    return len(orjson.dumps(value))


def merge_metadata(
    old: dict[str, Any], new: dict[str, Any], bounds: StateBounds = DEFAULT_BOUNDS
) -> tuple[dict[str, Any], int]:
    """The union of two metadata mappings (``new``'s values win) within ``bounds``, and how
    many of ``new``'s keys were dropped. Over a bound, ``old``'s keys stay and ``new``'s are
    taken in order while they fit (a changed value only if it fits); ``TRUNCATED_KEY`` then
    adds up the keys dropped."""
    merged = {**old, **new}
    if not new or (len(merged) <= bounds.metadata_keys and _size(merged) <= bounds.metadata_bytes):
        return merged, 0
    out = dict(old)
    max_keys, max_bytes = bounds.metadata_keys - 1, bounds.metadata_bytes - 64  # the marker
    size, dropped = _size(out), 0
    for k, v in new.items():
        if k == TRUNCATED_KEY:
            continue
        prev = out.get(k, _MISSING)
        # a changed value: its growth; a new key: "k":v,
        grow = _size(v) - _size(prev) if prev is not _MISSING else _size(k) + _size(v) + 2
        if size + grow <= max_bytes and (prev is not _MISSING or len(out) < max_keys):
            out[k] = v
            size += grow
        else:
            dropped += 1
    if dropped:
        out[TRUNCATED_KEY] = int(old.get(TRUNCATED_KEY) or 0) + dropped
    return out, dropped


#: A trajectory record's JSON form before any field is set: the model's field order and
#: defaults (``timestamp`` and ``trace_id`` are always set by a record).
_DEFAULTS: dict[str, Any] = {
    name: None if info.is_required() or info.default_factory else info.default
    for name, info in TrajectoryRecord.model_fields.items()
}


def merge_json(
    old: dict[str, Any] | None, new: AnyTrajectory, bounds: StateBounds = DEFAULT_BOUNDS
) -> tuple[dict[str, Any], int]:
    """``new`` merged into ``old`` (a trajectory's JSON form, ``model_dump(mode="json")``),
    in that form, and how many metadata keys the bounds dropped: the fields ``new`` sets to a
    value win, ``started_at`` keeps the earliest value, ``metadata`` is the union (``new``'s
    keys win) within ``bounds`` (:func:`merge_metadata`). ``old`` is not modified."""
    if isinstance(new, TrajectoryRecord):
        if old is None:
            old = new.model_dump(mode="json", exclude={"metadata"})
            old["metadata"] = {}
        dumped = new.model_dump(mode="json", include=new.model_fields_set)
        updates = {k: v for k, v in dumped.items() if v is not None}
    else:
        updates = {k: v for k, v in msgspec.to_builtins(new).items() if v is not None}
        if old is None:
            old = {**_DEFAULTS, "metadata": {}}
    merged = {**old, **updates}
    start, old_start = updates.get("started_at"), old.get("started_at")
    if start is not None and old_start is not None and _instant(old_start) < _instant(start):
        merged["started_at"] = old_start
    merged["metadata"], dropped = merge_metadata(
        old.get("metadata") or {}, updates.get("metadata") or {}, bounds
    )
    return merged, dropped


def _instant(value: str) -> datetime:
    """A JSON-form timestamp (ISO 8601, UTC) as a datetime, to compare two of them."""
    return datetime.fromisoformat(value)

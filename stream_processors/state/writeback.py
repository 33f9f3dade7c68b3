"""Faust-table helpers for batch processing.

- :func:`as_current` makes one Faust event the current event, so table writes inside a
  ``take_events`` batch changelog to the partition that event came from (Faust sets the
  current event only per single event); :func:`set_current` / :func:`reset_current` do the
  same without a context manager, for the chain's per-message loop.
- :class:`WriteBack` buffers a batch's writes to a table and applies each key once, at the
  end of the batch: a trajectory that starts and ends within one batch costs one changelog
  record instead of two, and reads in between see the buffered value. Keys are flushed in
  the order of their last write, so a record written after others (an index after the
  records it counts) is also produced after them.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator, MutableMapping
from contextvars import Token
from typing import Any

from faust.streams import _current_event, current_event

from meterline.stream_processors.state.changelog import Changelog


@contextlib.contextmanager
def as_current(event: Any) -> Iterator[None]:
    """``event`` (a Faust event, or anything with ``message.partition``) is the current
    event inside the block; None: nothing changes."""
    if event is None:
        yield
        return
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def set_current(event: Any) -> Token[Any]:
    """Make ``event`` Faust's current event until :func:`reset_current` with the token."""
    return _current_event.set(weakref.ref(event))


def reset_current(token: Token[Any]) -> None:
    _current_event.reset(token)


_DELETED = object()


class _At:
    """Stands in for a Faust event where only the source partition matters: a store that
    picks its partition database from the current event (RocksDB) gets ``partition``."""

    __slots__ = ("__weakref__", "message")

    def __init__(self, partition: int) -> None:
        self.message = _Partition(partition)


class _Partition:
    __slots__ = ("partition",)

    def __init__(self, partition: int) -> None:
        self.partition = partition


def _current_partition() -> int | None:
    event = current_event()
    return None if event is None else int(event.message.partition)


class WriteBack(MutableMapping[str, Any]):
    """A write-back view of ``table`` for one batch; :meth:`flush` before awaiting acks.

    Each buffered write remembers its partition: the current Faust event's, or the one given
    to :meth:`put` / :meth:`remove` (timers run outside any event). With a
    :class:`~meterline.stream_processors.state.changelog.Changelog`, :meth:`flush` writes the
    table's store
    and produces the changelog record through the batch output (see that module); without
    one, it assigns through the Faust table (which needs a current event).
    """

    def __init__(self, table: MutableMapping[str, Any], changelog: Changelog | None = None) -> None:
        self.table = table
        self.changelog = changelog
        self._dirty: dict[str, tuple[Any, int | None]] = {}

    def __getitem__(self, key: str) -> Any:
        hit = self._dirty.get(key)
        if hit is not None:
            if hit[0] is _DELETED:
                raise KeyError(key)
            return hit[0]
        return self.table[key]

    def get(self, key: str, default: Any = None) -> Any:
        hit = self._dirty.get(key)
        if hit is not None:
            return default if hit[0] is _DELETED else hit[0]
        # a Faust table's get() goes through __missing__ hooks; a membership test is cheaper
        return self.table[key] if key in self.table else default  # noqa: SIM401

    def __contains__(self, key: object) -> bool:
        hit = self._dirty.get(key) if isinstance(key, str) else None
        if hit is not None:
            return hit[0] is not _DELETED
        return key in self.table

    def __setitem__(self, key: str, value: Any) -> None:
        self._write(key, value, _current_partition())

    def put(self, key: str, value: Any, partition: int) -> None:
        self._write(key, value, partition)

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self._write(key, _DELETED, _current_partition())

    def remove(self, key: str, partition: int) -> None:
        if key in self:
            self._write(key, _DELETED, partition)

    def _write(self, key: str, value: Any, partition: int | None) -> None:
        self._dirty.pop(key, None)  # flush order: the order of the last writes
        self._dirty[key] = (value, partition)

    def pop(self, key: str, *default: Any) -> Any:
        if key not in self:
            if default:
                return default[0]
            raise KeyError(key)
        value = self[key]
        del self[key]
        return value

    def __iter__(self) -> Iterator[str]:
        keys = {k for k in self.table if k not in self._dirty}
        keys.update(k for k, (v, _) in self._dirty.items() if v is not _DELETED)
        return iter(keys)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    @property
    def pending(self) -> int:
        return len(self._dirty)

    def flush(self) -> int:
        """Apply the buffered writes to the table (each key once); return how many."""
        n = len(self._dirty)
        changelog = self.changelog
        store: Any = None
        # the current event stands for the partition written; set once per run of keys of one
        # partition (a context manager per key cost more than the write)
        pinned: _At | None = None
        token: Any = None
        try:
            for key, (value, partition) in self._dirty.items():
                if changelog is None or partition is None:  # Faust writes store + changelog
                    if token is not None:  # under the caller's current event, not ours
                        _current_event.reset(token)
                        token = pinned = None
                    if value is _DELETED:
                        if key in self.table:
                            del self.table[key]
                    else:
                        self.table[key] = value
                    continue
                if pinned is None or pinned.message.partition != partition:
                    if token is not None:
                        _current_event.reset(token)
                    pinned = _At(partition)
                    token = _current_event.set(weakref.ref(pinned))  # type: ignore[arg-type]
                if store is None:
                    store = self.table.data  # type: ignore[attr-defined]
                if value is _DELETED:
                    if key in store:
                        del store[key]
                    changelog.send(partition, key, None)
                else:
                    store[key] = value
                    changelog.send(partition, key, value)
        finally:
            if token is not None:
                _current_event.reset(token)
        self._dirty.clear()
        return n


class PartitionPinned(MutableMapping[str, Any]):
    """A :class:`WriteBack` whose JSON-dict values remember their source partition.

    For state written both inside a batch (a current Faust event gives the partition) and
    after it (the rule stage's ``drain``, timers: no current event): the first write of a
    key stores the partition in the value under ``field``; later writes and deletes reuse
    it, so every changelog record goes to the partition the key's events come from.
    """

    def __init__(
        self,
        buffer: WriteBack,
        field: str = "_p",
        owned: Callable[[], set[int]] | None = None,
    ) -> None:
        self.buffer = buffer
        self.field = field
        self.owned = owned

    def __getitem__(self, key: str) -> Any:
        return self.buffer[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.buffer.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.buffer

    def __setitem__(self, key: str, value: Any) -> None:
        partition = _current_partition()
        if partition is None:
            partition = value.get(self.field)
            if partition is None:
                old = self.buffer.get(key)
                partition = old.get(self.field) if old is not None else None
        if partition is None:
            raise KeyError(f"{key!r}: no source partition (no current event, none stored)")
        if value.get(self.field) != partition:
            value = {**value, self.field: partition}
        self.buffer.put(key, value, int(partition))

    def __delitem__(self, key: str) -> None:
        old = self.buffer[key]
        partition = _current_partition()
        self.buffer.remove(key, int(partition if partition is not None else old[self.field]))

    def __iter__(self) -> Iterator[str]:
        """Every key, or with ``owned`` only the keys of the partitions this worker owns now
        (a store may keep other partitions' keys after a rebalance: scans such as expiry
        must not write tombstones into a changelog partition another worker owns)."""
        if self.owned is None:
            return iter(self.buffer)
        owned = self.owned()
        return iter([k for k in self.buffer if self.buffer[k].get(self.field) in owned])

    def __len__(self) -> int:
        return sum(1 for _ in self)

"""Parked events of the join: early events waiting for their trajectory, one record each.

Table layout (``pending-events``; ``key`` is the join's ``project␟trace_id``, ␟ = ``SEP``,
which ids cannot contain):

- ``key`` -> the trace's index ``{"p": source partition, "n": events parked, "s": events
  sent, "t": when the last one was parked}``;
- ``key␟i`` for ``i`` in ``0..n-1`` -> event ``i``: ``{"e": event, "t": parked at, "x": sent
  when parked}``. Events ``0..s-1`` went out (unjoined); event ``s``, if any, is held.

No record grows with the number of parked events: parking writes one event record and
rewrites the small index, releasing deletes them; event records are never rewritten. Through
:class:`~meterline.stream_processors.state.writeback.WriteBack` the index costs one changelog
record per
trace per batch, flushed after the event records it counts (WriteBack flushes keys in the
order of their last write): a crash mid-flush leaves at worst records the index does not
count yet, which the replayed batch overwrites. A record that would not fit one Kafka
message (``max_record_bytes``) is not parked.

In memory, rebuilt from the table by :meth:`ParkedEvents.recover` after every recovery: the
traces with parked events, and a schedule of traces by when their first held event is due,
so a grace sweep touches only the events due and an idle sweep only the traces. Also in
memory, never rebuilt: the parsed event (and its JSON) of each record parked by this process,
so releasing it costs no re-validation; a record without one (recovered) is parsed again.
"""

from __future__ import annotations

import heapq
from collections.abc import MutableMapping
from typing import Any

import orjson
from pydantic import TypeAdapter

from meterline.schemas import ActionEvent, Event, TelemetryEvent
from meterline.schemas.fast_decode import AnyEvent, to_json_dict
from meterline.stream_processors.steps.dedupe import SEP
from meterline.stream_processors.steps.enriched import event_json as json_of

State = MutableMapping[str, Any]

_EVENT: TypeAdapter[Event] = TypeAdapter(ActionEvent | TelemetryEvent)
#: Parked record values stay under this: with the key (two ids of at most 256 characters)
#: and Kafka's record framing, one changelog message stays under the output producer's
#: 1,000,000-byte limit (librdkafka ``message.max.bytes``). The validator admits events of up
#: to 1,000,000 bytes and the parked form adds fields, so an event near that size is not parked.
DEFAULT_MAX_PARKED_BYTES = 990_000


def event_key(key: str, i: int) -> str:
    return f"{key}{SEP}{i}"


def put(state: State, key: str, value: Any, partition: int) -> None:
    """Write with an explicit partition where the mapping supports it (``WriteBack``)."""
    setter = getattr(state, "put", None)
    if setter is not None:
        setter(key, value, partition)
    else:
        state[key] = value


def delete(state: State, key: str, partition: int) -> None:
    remove = getattr(state, "remove", None)
    if remove is not None:
        remove(key, partition)
    else:
        state.pop(key, None)


def _owned(index: dict[str, Any], partitions: set[int] | None) -> bool:
    return partitions is None or int(index["p"]) in partitions


class ParkedEvents:
    """The ``pending-events`` layout above over any mapping (a ``WriteBack`` in the worker).
    Call :meth:`recover` whenever the mapping was filled from elsewhere (table recovery)."""

    def __init__(
        self, table: State, *, max_per_trace: int, max_record_bytes: int = DEFAULT_MAX_PARKED_BYTES
    ) -> None:
        self.table = table
        self.max_per_trace = max_per_trace
        self.max_record_bytes = max_record_bytes
        self._traces: set[str] = set()
        self._due_at: dict[str, float] = {}  # trace -> park time of its first held event
        self._schedule: list[tuple[float, str]] = []  # heap; stale where _due_at differs
        #: event record key -> the event parked there and its JSON (records parked here)
        self._events: dict[str, tuple[AnyEvent, bytes | None]] = {}

    def park(
        self, key: str, event: AnyEvent, partition: int, now: float, *, sent: bool,
        event_json: bytes | None = None,
    ) -> bool:  # fmt: skip
        """Park ``event`` under its trace ``key`` (``sent``: it already went out unjoined;
        ``event_json``: its JSON, e.g. as received, returned by :meth:`release_encoded`).
        False if the trace already has ``max_per_trace`` parked or the record is too large:
        nothing is written. O(1)."""
        index = self._index(key) or {"p": partition, "n": 0, "s": 0, "t": now}
        n, s = int(index["n"]), int(index["s"])
        if n >= self.max_per_trace:
            return False
        # model_dump(mode="json") of the event, without building the model for a Struct
        record: dict[str, Any] = {"e": to_json_dict(event), "t": now, "x": sent}
        if len(orjson.dumps(record)) > self.max_record_bytes:
            return False
        ekey = event_key(key, n)
        put(self.table, ekey, record, partition)
        self._events[ekey] = (event, event_json)
        caught_up = s == n  # every event before this one went out
        s = s + 1 if sent and caught_up else s
        put(self.table, key, {"p": partition, "n": n + 1, "s": s, "t": now}, partition)
        self._traces.add(key)
        if not sent and key not in self._due_at:  # its first held event, usually this one
            first = record if caught_up else self.table.get(event_key(key, s))
            self._plan(key, float(first["t"]) if first is not None else now)
        return True

    def release_encoded(self, key: str) -> list[tuple[AnyEvent, bytes, bool]]:
        """Remove the trace's parked events; return each with its JSON (as given to
        :meth:`park`, else encoded) and whether it went out before."""
        index = self._index(key)
        if index is None:
            return []
        out = []
        for ekey, rec, sent in self._remove(key, index):
            event, event_json = self._event(ekey, rec)
            out.append((event, json_of(event, event_json), sent))
        return out

    def _event(
        self, ekey: str, rec: dict[str, Any], *, forget: bool = True
    ) -> tuple[AnyEvent, bytes | None]:
        """The event of record ``rec`` (at ``ekey``): as parked by this process, else parsed.
        ``forget``: the record is gone, so is its memory."""
        cached = self._events.pop(ekey, None) if forget else self._events.get(ekey)
        if cached is not None:
            return cached
        return _EVENT.validate_python(rec["e"]), None

    def due(
        self, now: float, grace_s: float, partitions: set[int] | None
    ) -> list[tuple[AnyEvent, bytes]]:
        """Held events parked at least ``grace_s`` ago, in park order per trace: marked sent
        and returned with their JSON (as for :meth:`release_encoded`). Costs the events due,
        not the events parked. Traces on partitions not in ``partitions`` leave the schedule:
        they are another worker's now, and the recovery that follows every assignment
        schedules them again."""
        out: list[tuple[AnyEvent, bytes]] = []
        later: list[tuple[str, float]] = []
        while self._schedule and now - self._schedule[0][0] >= grace_s:
            t, key = heapq.heappop(self._schedule)
            if self._due_at.get(key) != t:
                continue  # released, or planned again
            del self._due_at[key]
            index = self._index(key)
            if index is None or not _owned(index, partitions):
                continue
            n, i = int(index["n"]), int(index["s"])
            while i < n:
                rec = self.table.get(event_key(key, i))
                if rec is not None and not rec["x"]:
                    if now - rec["t"] < grace_s:
                        later.append((key, rec["t"]))
                        break
                    event, event_json = self._event(event_key(key, i), rec, forget=False)
                    out.append((event, json_of(event, event_json)))
                i += 1  # sent at park (after a held one), sent now, or lost in a crash
            put(self.table, key, {**index, "s": i}, int(index["p"]))
        for key, t in later:
            self._plan(key, t)
        return out

    def forget_idle(self, limit: float, partitions: set[int] | None) -> int:
        """Drop traces whose events all went out and none was parked after ``limit``."""
        forgotten = 0
        for key in list(self._traces):
            index = self._index(key)
            if index is None:
                self._traces.discard(key)
            elif (_owned(index, partitions) and index["s"] >= index["n"]
                  and index["t"] <= limit):
                for ekey, _, _ in self._remove(key, index):
                    self._events.pop(ekey, None)
                forgotten += 1
        return forgotten

    def recover(self) -> int:
        """Rebuild the in-memory traces and schedule from the table (after a restart or a
        rebalance: the changelog is the state). Returns the number of traces with parked
        events."""
        self._traces.clear()
        self._due_at.clear()
        self._schedule.clear()
        self._events.clear()
        for key in [k for k in self.table if k.count(SEP) == 1]:  # indexes, not events
            index = self._index(key)
            if index is None:
                continue
            self._traces.add(key)
            s = int(index["s"])
            if s < int(index["n"]):
                rec = self.table.get(event_key(key, s))
                self._plan(key, rec["t"] if rec is not None else float(index["t"]))
        return len(self._traces)

    def _index(self, key: str) -> dict[str, Any] | None:
        index: dict[str, Any] | None = self.table.get(key)
        return index

    def _plan(self, key: str, t: float) -> None:
        self._due_at[key] = t
        heapq.heappush(self._schedule, (t, key))

    def _remove(self, key: str, index: dict[str, Any]) -> list[tuple[str, dict[str, Any], bool]]:
        """Delete the trace's records (the index last); return the key of each event record
        present, the record, and whether it went out before. Call :meth:`_event` for its
        event before the next :meth:`park`."""
        p, s = int(index["p"]), int(index["s"])
        self._traces.discard(key)
        self._due_at.pop(key, None)
        records = []
        for i in range(int(index["n"])):
            ekey = event_key(key, i)
            rec = self.table.get(ekey)
            if rec is not None:
                records.append((ekey, rec, i < s or bool(rec["x"])))
                delete(self.table, ekey, p)
            else:
                self._events.pop(ekey, None)
        delete(self.table, key, p)
        return records

"""The HTTP sink's bounded buffer: records waiting for a request, and the batch in flight.

Thread-safe (one condition). The client's sender thread adds; the posting thread takes
batches (full, lingered, or flushed), puts back a half a 413 refused, and finishes them;
``flush`` waits until nothing is buffered or in flight; ``purge`` empties both.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from meterline.producers.errors import ProducerError, QueueFull
from meterline.producers.http.config import HttpConfig
from meterline.producers.sink import DeliveryCallback
from meterline.schemas import RawRecord


@dataclass
class Item:
    record: RawRecord
    line: bytes  # the record's NDJSON line, without the newline
    callback: DeliveryCallback | None
    queued_at: float
    deadline: float  # queued_at + delivery_timeout_s


@dataclass
class Batch:
    items: list[Item]
    settled: bool = False  # reported (delivered, failed or purged): never report twice


class Buffer:
    def __init__(self, config: HttpConfig) -> None:
        self.config = config
        self.cond = threading.Condition()
        self._items: deque[Item] = deque()
        self._bytes = 0
        self._flushing = 0
        self.inflight: Batch | None = None
        self.closed = False

    def add(self, record: RawRecord, line: bytes, callback: DeliveryCallback | None) -> None:
        """Buffer one record; waits up to ``block_timeout_s`` for room, then QueueFull."""
        c = self.config
        with self.cond:
            if self.closed:
                raise ProducerError("the HTTP sink is closed; record not sent")
            if len(self._items) >= c.max_buffered:
                deadline = time.monotonic() + c.block_timeout_s
                while len(self._items) >= c.max_buffered:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise QueueFull(f"HTTP sink buffer full ({c.max_buffered} records) for "
                                        f"{c.block_timeout_s}s; record not sent")  # fmt: skip
                    self.cond.wait(left)
            now = time.monotonic()
            self._items.append(Item(record, line, callback, now, now + c.delivery_timeout_s))
            self._bytes += len(line) + 1
            n = len(self._items)
            if n == 1 or n >= c.max_records or self._bytes >= c.max_bytes:
                self.cond.notify_all()

    def take(self) -> Batch | None:
        """Wait for a batch to post (full, lingered, or flushed); None once closed."""
        c = self.config
        with self.cond:
            while not self.closed:
                items = self._items
                if not items:
                    self.cond.wait()
                    continue
                age = time.monotonic() - items[0].queued_at
                full = len(items) >= c.max_records or self._bytes >= c.max_bytes
                if not (full or self._flushing or age >= c.linger_s):
                    self.cond.wait(c.linger_s - age)
                    continue
                batch: list[Item] = []
                size = 0
                while items and len(batch) < c.max_records and (
                        not batch or size + len(items[0].line) + 1 <= c.max_bytes):
                    item = items.popleft()
                    size += len(item.line) + 1
                    batch.append(item)
                self._bytes -= size
                self.inflight = Batch(batch)
                self.cond.notify_all()  # room for a blocked add
                return self.inflight
            return None

    def put_back(self, batch: Batch, items: list[Item]) -> None:
        """Return ``items`` (taken from ``batch``) to the front of the buffer."""
        with self.cond:
            if batch.settled:
                return
            self._items.extendleft(reversed(items))
            self._bytes += sum(len(i.line) + 1 for i in items)

    def claim(self, batch: Batch) -> bool:
        """True once per batch: the caller reports it."""
        with self.cond:
            if batch.settled:
                return False
            batch.settled = True
            return True

    def finish(self, batch: Batch) -> None:
        with self.cond:
            if self.inflight is batch:
                self.inflight = None
            self.cond.notify_all()

    def pending(self) -> int:
        inflight = self.inflight
        return len(self._items) + (len(inflight.items) if inflight is not None else 0)

    def wait_empty(self, timeout: float, alive: threading.Thread) -> int:
        """Have what is buffered posted now; wait up to ``timeout`` until nothing is pending
        (or ``alive`` died). Returns how many still are."""
        deadline = time.monotonic() + timeout
        with self.cond:
            self._flushing += 1
            self.cond.notify_all()
            try:
                while self.pending() and alive.is_alive():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self.cond.wait(left)
                return self.pending()
            finally:
                self._flushing -= 1

    def purge(self) -> list[Item]:
        """Empty the buffer and give up the batch in flight; the items to report."""
        with self.cond:
            items = list(self._items)
            self._items.clear()
            self._bytes = 0
            batch, self.inflight = self.inflight, None
            if batch is not None and not batch.settled:
                batch.settled = True
                items = batch.items + items
            self.cond.notify_all()
            return items

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()

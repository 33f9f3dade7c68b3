"""Whether what the pipeline was given has landed in ClickHouse: a watermark from committed
offsets.

Contract: :meth:`Watermark.wait_landed` returns an instant ``W`` such that every raw record
in the log at ``W`` has been processed and every output of it is in ClickHouse:

1. the raw topics' end offsets at ``W``; wait until the processor's group (``app_id``) has
   committed up to them (it commits a batch only after its outputs are acknowledged);
2. then the sink inputs' end offsets; wait until the sink's group has committed up to them
   (the sink commits only after its ClickHouse insert returned).

End offsets are the log's true ends
(:func:`~meterline.stream_processors.faust_layer.end_offsets.true_end_offsets`:
Tansu under-reports the high watermark by up to one record batch). A group that never
committed a partition is counted from the partition's start. Read-only: joins no group,
commits nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from confluent_kafka import Consumer, TopicPartition

from meterline.billing.errors import BillingError
from meterline.schemas import utc_now
from meterline.settings import Settings
from meterline.stream_processors.faust_layer.end_offsets import true_end_offsets

#: group id of the handle that reads metadata and end offsets (never joins, never commits)
READER_GROUP = "meterline-watermark-reader"


class NotLanded(BillingError):
    """Records the pipeline was given are not all in ClickHouse yet."""


class _TP(NamedTuple):
    topic: str
    partition: int


@dataclass(frozen=True)
class Behind:
    group: str
    topic: str
    partition: int
    committed: int
    target: int

    def __str__(self) -> str:
        return f"{self.group} on {self.topic}[{self.partition}]: {self.target - self.committed}"


class Watermark:
    def __init__(
        self, config: dict[str, Any], settings: Settings, timeout_s: float = 5.0
    ) -> None:
        self.config = config  # librdkafka settings: bootstrap and access
        self.settings = settings
        self.timeout_s = timeout_s

    @classmethod
    def from_settings(cls, settings: Settings) -> Watermark | None:
        """None without ``kafka_bootstrap``: no broker known, nothing can be in flight."""
        if not settings.kafka_bootstrap:
            return None
        config = {"bootstrap.servers": settings.kafka_bootstrap, **settings.kafka_client_config()}
        return cls(config, settings)

    def _consumer(self, group: str) -> Any:
        return Consumer({**self.config, "group.id": group, "enable.auto.commit": False,
                         "log_level": 2})  # fmt: skip

    def targets(self, topics: Iterable[str]) -> dict[_TP, int]:
        """The true end offset of every partition of ``topics`` (missing topics: none)."""
        c = self._consumer(READER_GROUP)
        try:
            meta = c.list_topics(timeout=self.timeout_s).topics
            reported: dict[_TP, int | None] = {}
            for t in topics:
                if t in meta and meta[t].error is None:
                    for p in sorted(meta[t].partitions):
                        tp = TopicPartition(t, p)
                        reported[_TP(t, p)] = c.get_watermark_offsets(
                            tp, timeout=self.timeout_s, cached=False
                        )[1]
        finally:
            c.close()
        ends = true_end_offsets(self.config, reported, timeout_s=self.timeout_s)
        return {tp: int(end or 0) for tp, end in ends.items()}

    def behind(self, group: str, targets: dict[_TP, int]) -> list[Behind]:
        """The partitions where ``group``'s committed offset is below its target."""
        if not targets:
            return []
        c = self._consumer(group)
        try:
            tps = [TopicPartition(tp.topic, tp.partition) for tp in targets]
            committed = {(x.topic, x.partition): x.offset for x in c.committed(tps, 30)}
            lows = {
                tp: c.get_watermark_offsets(TopicPartition(*tp), timeout=self.timeout_s)[0]
                for tp in targets
                if committed.get(tp, -1) < 0
            }
        finally:
            c.close()
        out = []
        for tp, target in sorted(targets.items()):
            at = committed.get(tp, -1)
            at = at if at >= 0 else lows.get(tp, 0)
            if at < target:
                out.append(Behind(group, tp.topic, tp.partition, at, target))
        return out

    def wait(self, group: str, targets: dict[_TP, int], deadline: float) -> list[Behind]:
        """Poll :meth:`behind` until nothing is behind or ``deadline`` (monotonic) passed."""
        while True:
            late = self.behind(group, targets)
            if not late or time.monotonic() >= deadline:
                return late
            time.sleep(0.5)

    def outputs_landed(self, targets: dict[_TP, int]) -> bool:
        return not self.behind(self.settings.sink_group, targets)

    def output_targets(self) -> dict[_TP, int]:
        return self.targets(self.settings.topics.sink_inputs)

    def wait_landed(self, wait_s: float) -> datetime:
        """``W`` (see the module), once both groups reached their targets within ``wait_s``.

        Raises:
            NotLanded: a group is still behind after ``wait_s``; the message says which
                and by how many records.
        """
        deadline = time.monotonic() + max(0.0, wait_s)
        s = self.settings
        w = utc_now()
        late = self.wait(s.app_id, self.targets(s.topics.raw), deadline)
        if not late:
            late = self.wait(s.sink_group, self.output_targets(), deadline)
        if late:
            shown = ", ".join(str(b) for b in late[:6]) + (" ..." if len(late) > 6 else "")
            raise NotLanded(
                f"not every event has landed in ClickHouse after waiting {wait_s:g}s "
                f"(records behind: {shown}); results over such a period could retract "
                "outcomes whose events are still in flight. Retry when the pipeline has "
                "caught up, or wait longer with --wait-s."
            )
        return w

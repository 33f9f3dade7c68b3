"""CPU per event of the processor's batch step, in process: no Kafka, no Faust runtime.

    python bench/bench_processor.py [--events 100000] [--framing batch|single|both]
                                    [--profile] [--librdkafka] [--check]

Drives :meth:`meterline.stream_processors.pipeline.BatchProcessor.process` (validate, dedupe, join,
park, changelog buffering, pricing, encode: the worker's code paths) over generated traffic (2%
duplicates, 5% early events), framed as the SDK frames it (NDJSON batch messages of up to
500 records per topic-partition, :mod:`meterline.producers.batching`) or one record per message.
Batches hold up to ``--batch-records`` records (whole messages), as ``take_events`` would
hand them over.

Stand-ins: the output collects what it is sent (``--librdkafka``: a real librdkafka
producer pointed nowhere, purged at each flush, to include the C ``produce`` cost); tables
are dicts with ``.data`` but serialise changelog records with a real Faust table's changelog
topic and serialisers; Faust events carry a ``.message`` (topic, partition, offset, key,
value, headers). Not measured: Faust's consumer (fetch, decode, dispatch, acks, offset
commits) and the event loop around ``take_events``.

``--check``: processing time and "now" are frozen and a SHA-256 over every output record
(topic, partition, key, value, in order) is printed, to compare two versions of the code.

Also printed: the pricing step alone, CPU µs per llm_call (the issue-25 budget: 3 µs).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import io
import pstats
import re
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import faust

from meterline.demo.traffic import generate
from meterline.producers.batching import BatchConfig, Batcher
from meterline.producers.partitioner import partition_for
from meterline.schemas import ActionEvent, TelemetryEvent, Topics, encode, framing
from meterline.schemas.fast_decode import decode_raw_fast
from meterline.stream_processors import pipeline
from meterline.stream_processors.config import ProcessorConfig
from meterline.stream_processors.faust_layer.output import BatchOutput
from meterline.stream_processors.pipeline import BatchProcessor, Outputs
from meterline.stream_processors.pricing import PricingStep
from meterline.stream_processors.state.changelog import Changelog
from meterline.stream_processors.state.dedupe import PersistentDedupe
from meterline.stream_processors.state.writeback import WriteBack
from meterline.stream_processors.steps.dedupe import DedupeWindow
from meterline.stream_processors.steps.join import TrajectoryJoiner
from meterline.stream_processors.steps.quarantine import ProjectGuard

PARTITIONS = 4
FROZEN_NOW = datetime(2026, 11, 27, tzinfo=UTC)
_PROCESSED_AT = re.compile(rb'"processed_at":"[^"]*"')


class Message:
    __slots__ = ("headers", "key", "offset", "partition", "topic", "value")

    def __init__(
        self, topic: str, partition: int, offset: int, key: bytes, value: bytes,
        headers: list[tuple[str, bytes]],
    ) -> None:  # fmt: skip
        self.topic, self.partition, self.offset = topic, partition, offset
        self.key, self.value, self.headers = key, value, headers


class FaustEvent:
    """What the processor reads of a Faust event (weak-referenceable, as Faust's are)."""

    def __init__(self, message: Message) -> None:
        self.message = message


class Collector:
    """:class:`BatchOutput`'s interface, collecting what it is sent."""

    def __init__(self) -> None:
        self.records: list[tuple[str, int | None, bytes | None, bytes | None]] = []
        self.sent: dict[str, int] = {}

    def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> None:
        self.sent[topic] = self.sent.get(topic, 0) + 1
        self.records.append((topic, partition, key, value))

    def send_framed(self, topic: str, group: int, key: bytes, value: bytes) -> None:
        """Collected record by record, as sent: the digest does not depend on framing."""
        self.send(topic, key, value)

    async def flush(self, timeout_s: float = 60.0) -> None:
        return None


class NowhereOutput(BatchOutput):
    """The real librdkafka producer, pointed at no broker: each flush purges the queue."""

    def __init__(self) -> None:
        config = {"security.protocol": "plaintext", "linger.ms": 1000, "log_level": 0}
        super().__init__("127.0.0.1:1", config)
        self.records: list[Any] = []

    async def flush(self, timeout_s: float = 60.0) -> None:
        self.emit_frames()
        self._producer.purge(in_queue=True, in_flight=True)
        self._producer.poll(0)  # purged records' delivery reports (errors), then dropped
        self._errors.clear()


class Store(dict[str, Any]):
    """A Faust table as the processor uses it: a mapping whose ``.data`` is the store; the
    changelog topic and serialisers are a real Faust table's (so serialisation is real)."""

    def __init__(self, table: Any) -> None:
        super().__init__()
        self.changelog_topic = table.changelog_topic
        self.key_serializer = table.key_serializer
        self.value_serializer = table.value_serializer

    @property
    def data(self) -> dict[str, Any]:
        return self


def messages(events: int, framed: bool) -> list[Message]:
    """Traffic as the SDK's producer would put it on the raw topics, in production order."""
    traffic = generate(project="bench", events=events, duplicate_rate=0.02, early_rate=0.05)
    topics = Topics()
    batcher = Batcher(BatchConfig() if framed else BatchConfig(max_records=1))
    offsets: dict[tuple[str, int], int] = {}
    out: list[Message] = []

    def emit(topic: str, partition: int, key: bytes, value: bytes, headers: Any) -> None:
        offset = offsets.get((topic, partition), 0)
        offsets[(topic, partition)] = offset + 1
        out.append(Message(topic, partition, offset, key, value, headers))

    for record in traffic.records:
        if isinstance(record, ActionEvent):
            topic = topics.actions
        elif isinstance(record, TelemetryEvent):
            topic = topics.telemetry
        else:
            topic = topics.trajectories
        key, value = record.routing_key.encode(), encode(record)
        partition = partition_for(key, PARTITIONS)
        if not framed:
            emit(topic, partition, key, value, [])
            continue
        for batch in batcher.add(topic, partition, key, value, lambda *_: None):
            emit(batch.topic, batch.partition, batch.key, framing.join(batch.values),
                 list(framing.BATCH_HEADERS))  # fmt: skip
    for batch in batcher.drain():
        emit(batch.topic, batch.partition, batch.key, framing.join(batch.values),
             list(framing.BATCH_HEADERS))  # fmt: skip
    return out


def batches(msgs: list[Message], max_records: int) -> Iterator[list[FaustEvent]]:
    """``take_events``-sized lists of Faust events: whole messages, up to ``max_records``
    records (and at most ``pipeline.BATCH_MAX`` messages) each."""
    batch: list[FaustEvent] = []
    n = 0
    for m in msgs:
        k = m.value.count(b"\n") + 1 if m.headers else 1
        if batch and (n + k > max_records or len(batch) >= pipeline.BATCH_MAX):
            yield batch
            batch, n = [], 0
        batch.append(FaustEvent(m))
        n += k
    if batch:
        yield batch


def build(librdkafka: bool) -> tuple[BatchProcessor, Any]:
    """The processor as ``worker.build_pipeline`` wires it, on stand-ins."""
    settings = ProcessorConfig()
    app = faust.App("meterline", broker="kafka://127.0.0.1:1", store="memory://")
    out: Any = NowhereOutput() if librdkafka else Collector()

    def table(name: str, **kw: Any) -> Store:
        return Store(app.Table(name, partitions=PARTITIONS, key_type=str, **kw))

    topics = settings.topics
    outputs = Outputs(
        producer=out, enriched=topics.enriched, trajectory_state=topics.trajectory_state,
        dead_letters=topics.dead_letters, outcomes=topics.outcomes,
    )  # fmt: skip
    seen = table("dedupe-window", value_type=bytes)
    dedupe = PersistentDedupe(seen, DedupeWindow(window_s=settings.dedupe_window_s),
                              Changelog(seen, out))  # fmt: skip
    trajectory_table = table("trajectories")
    trajectories = WriteBack(trajectory_table, Changelog(trajectory_table, out))
    pending_table = table("pending-events")
    parked = WriteBack(pending_table, Changelog(pending_table, out))
    joiner = TrajectoryJoiner(
        trajectories, parked, grace_s=settings.join_grace_s,
        idle_timeout_s=settings.trajectory_idle_timeout_s,
        retention_s=settings.trajectory_retention_s,
    )  # fmt: skip

    async def flush_state() -> None:  # Faust's producer: nothing goes through it any more
        return None

    processor = BatchProcessor(
        outputs, dedupe, joiner, flush_state, ProjectGuard(settings.dlq_max_ratio or None),
        buffers=[trajectories, parked], pricing=PricingStep(),
    )  # fmt: skip
    return processor, out


def pricing_cost(msgs: list[Message], repeat: int) -> tuple[float, int]:
    """CPU µs per llm_call of the pricing step alone (best of ``repeat``), over the traffic's
    llm_calls as the worker decodes them, with a warm book (schedules compiled, as after
    the first call per model); and the number of calls."""
    calls = [
        r for m in msgs for line in (m.value.split(b"\n") if m.headers else [m.value])
        if b'"llm_call"' in line and (r := decode_raw_fast(line)) is not None
    ]  # fmt: skip
    step = PricingStep()
    for ev in calls[:100]:
        step.price_json(ev)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        for ev in calls:
            step.price_json(ev)
        best = min(best, time.process_time() - t0)
    return best / max(1, len(calls)) * 1e6, len(calls)


def run(batched: list[list[FaustEvent]], librdkafka: bool) -> tuple[float, Any, Any]:
    processor, out = build(librdkafka)

    async def main() -> float:
        t0 = time.process_time()
        for batch in batched:
            with processor.metrics.batch(len(batch)):
                await processor.process(batch)
        return time.process_time() - t0

    return asyncio.run(main()), processor, out


def freeze() -> None:
    """Freeze processing time for ``--check``: outputs then depend only on the code."""
    import meterline.schemas.validation as validation

    pipeline.utc_now = lambda: FROZEN_NOW  # type: ignore[attr-defined]
    validation.utc_now = lambda: FROZEN_NOW  # type: ignore[attr-defined]

    class _Time:
        @staticmethod
        def time() -> float:
            return FROZEN_NOW.timestamp()

    pipeline.time = _Time  # type: ignore[assignment]


def digest(records: list[Any]) -> str:
    """Over every output in order; ``processed_at`` (wall clock where an enriched event is
    built as a model) is blanked."""
    h = hashlib.sha256()
    for topic, partition, key, value in records:
        if value is not None and topic.endswith("enriched"):
            value = _PROCESSED_AT.sub(b'"processed_at":""', value)
        h.update(repr((topic, partition, key, value)).encode())
    return h.hexdigest()[:16]


def profile(batched: list[list[FaustEvent]], librdkafka: bool, top: int) -> None:
    prof = cProfile.Profile()
    prof.enable()
    run(batched, librdkafka)
    prof.disable()
    for key in ("tottime", "cumtime"):
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats(key).print_stats(top)
        lines = buf.getvalue().splitlines()
        start = next(i for i, line in enumerate(lines) if "ncalls" in line)
        print(f"\n-- top {top} by {key} --")
        print("\n".join(lines[start - 1 : start + top + 1]))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--framing", choices=["batch", "single", "both"], default="both")
    ap.add_argument("--batch-records", type=int, default=2_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs per framing; best is shown")
    ap.add_argument("--profile", action="store_true", help="cProfile one run per framing")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--librdkafka", action="store_true", help="real producer, purged")
    ap.add_argument("--check", action="store_true", help="frozen clock; digest of outputs")
    args = ap.parse_args(argv)
    if args.check:
        freeze()
    framings = ["batch", "single"] if args.framing == "both" else [args.framing]
    for name in framings:
        msgs = messages(args.events, framed=name == "batch")
        n_records = sum(m.value.count(b"\n") + 1 if m.headers else 1 for m in msgs)
        n_events = sum(1 for m in msgs for line in m.value.split(b"\n")
                       if b'"type":"trajectory"' not in line)  # fmt: skip
        batched = list(batches(msgs, args.batch_records))
        times: list[float] = []
        for _ in range(args.repeat):
            cpu, processor, out = run(batched, args.librdkafka)
            times.append(cpu)
        best = min(times)
        print(
            f"{name:6} {len(msgs):>7} messages {n_records:>7} records {len(batched):>4} "
            f"batches: {best / n_events * 1e6:6.1f} us/event {best / n_records * 1e6:6.1f} "
            f"us/record (best of {args.repeat}, us/event: "
            + ", ".join(f"{t / n_events * 1e6:.1f}" for t in times) + ")"
        )  # fmt: skip
        j = processor.joiner
        print(f"       out {dict(sorted(out.sent.items()))}")
        print(f"       joined={j.joined} held={j.held} unjoined={j.unjoined} "
              f"late_joined={j.late_joined} duplicates={processor.dedupe.window.duplicates} "
              f"dead_letters={processor.dead_letters}")  # fmt: skip
        us, n_llm = pricing_cost(msgs, args.repeat)
        print(f"       pricing {us:.2f} us per llm_call ({n_llm} llm_calls, price book "
              f"{processor.pricing.book.version if processor.pricing else '-'})")  # fmt: skip
        if args.check:
            print(f"       outputs sha256 {digest(out.records)}")
        if args.profile:
            profile(batched, args.librdkafka, args.top)


if __name__ == "__main__":
    main()

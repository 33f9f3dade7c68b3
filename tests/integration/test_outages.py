"""Outages on real Tansu + chDB: ClickHouse failing, the broker restarting.

What is real and what is injected: Kafka (Tansu) and ClickHouse (chDB) are real. The
ClickHouse outage is injected by :class:`FlakyClickHouse`, a wrapper around the real
clickhouse-connect chDB client whose ``insert`` raises the exception clickhouse-connect
raises when an HTTP server is unreachable (``OperationalError``) while ``down`` is set, and
passes through otherwise. (No ClickHouse server runs here and chDB does not serve HTTP.)
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import OperationalError
from confluent_kafka import Consumer

from meterline.demo.report import counts
from meterline.embedded.runtime import Pipeline
from meterline.producers import MeterlineClient, MeterlineProducer
from meterline.schemas import ActionEvent, TrajectoryRecord
from meterline.settings import Settings
from tests.fixtures import committed_offsets, wait_until

pytestmark = pytest.mark.integration


class FlakyClickHouse:
    """The real client, with inserts failing like an unreachable server while ``down``."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.down = threading.Event()
        self.refused = 0

    def insert(self, *args: Any, **kwargs: Any) -> Any:
        self._refuse_while_down()
        return self._client.insert(*args, **kwargs)

    def insert_arrow(self, *args: Any, **kwargs: Any) -> Any:  # the sink's hot tables
        self._refuse_while_down()
        return self._client.insert_arrow(*args, **kwargs)

    def _refuse_while_down(self) -> None:
        if self.down.is_set():
            self.refused += 1
            raise OperationalError(
                "Error HTTPConnectionPool(host='127.0.0.1', port=8123): Max retries exceeded "
                "(Caused by NewConnectionError: [Errno 111] Connection refused)"
            )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def events(project: str, n: int, trace: str = "t", start: int = 0) -> list[Any]:
    records: list[Any] = [TrajectoryRecord(project=project, trace_id=trace, user_id="u")]
    records += [
        ActionEvent(project=project, event_id=f"{trace}-{i}", trace_id=trace, name="tool")
        for i in range(start, start + n)
    ]
    return records


def send(settings: Settings, records: list[Any]) -> None:
    assert settings.kafka_bootstrap
    producer = MeterlineProducer(settings.kafka_bootstrap, topics=settings.topics)
    producer.send_many(records)
    assert producer.close() == 0 and producer.stats.failed == 0


def committed(settings: Settings) -> dict[int, int]:
    """The sink group's committed offsets on the enriched topic (partition -> offset >= 0)."""
    done = committed_offsets(
        settings.kafka_bootstrap, settings.sink_group, [settings.topics.enriched],
        settings.partitions,
    )  # fmt: skip
    return {p: offset for (_, p), offset in done.items() if offset >= 0}


def stored(p: Pipeline, project: str) -> tuple[int, int]:
    """(rows, distinct events) in ClickHouse without FINAL: rows > events means duplicates."""
    ((rows, distinct),) = p.clickhouse.query(
        f"SELECT count(), uniqExact(event_id) FROM {p.settings.database}.events "
        "WHERE project = %(p)s",
        parameters={"p": project},
    ).result_rows
    return int(rows), int(distinct)


def test_clickhouse_outage_holds_offsets_and_catches_up_without_duplicates(
    settings: Settings, clickhouse: Any
) -> None:
    flaky = FlakyClickHouse(clickhouse)
    with Pipeline(settings, clickhouse=flaky) as p:
        assert p.sink is not None
        p.sink.retry_backoff_s = (0.1, 1.0)
        send(settings, events("chdown", 500))
        db = settings.database
        assert wait_until(lambda: counts(p.clickhouse, db, "chdown").events == 500, 60, pipeline=p)
        before = committed(settings)
        assert before, "the sink committed nothing for the first 500 events"

        flaky.down.set()  # ClickHouse goes away
        send(settings, events("chdown", 1_500, start=500))
        sink = p.sink
        assert wait_until(lambda: sink.stats.write_failures >= 3, 60, pipeline=p)
        # retrying with backoff: nothing written, nothing committed past the first batch
        assert counts(p.clickhouse, settings.database, "chdown").events == 500
        assert committed(settings) == before

        flaky.down.clear()  # ClickHouse is back
        assert wait_until(
            lambda: counts(p.clickhouse, settings.database, "chdown").events == 2_000,
            60,
            pipeline=p,
        )
        assert stored(p, "chdown") == (2_000, 2_000)  # every row once: no batch inserted twice
        assert wait_until(lambda: committed(settings) != before, 30)
        assert flaky.refused >= 3


def test_broker_restart_is_recovered_without_operator_action(
    settings: Settings, clickhouse: Any
) -> None:
    """The embedded runtime owns its Tansu: when it dies, ``check()`` restarts it on the same
    port, re-creates the topics and restarts workers and sink. Tansu's memory storage loses
    every topic, so events already in ClickHouse stay and events sent afterwards arrive."""
    from dataclasses import replace

    own = replace(settings, kafka_bootstrap=None)  # the pipeline starts its own broker
    with Pipeline(own, clickhouse=clickhouse) as p:
        assert p.broker is not None
        port = p.broker.port
        db = p.settings.database
        send(p.settings, events("restart", 300, trace="before"))
        assert wait_until(lambda: counts(p.clickhouse, db, "restart").joined == 300, 60,
                          pipeline=p)

        p.broker.stop()  # the broker goes away with everything it held
        assert wait_until(lambda: p.broker_restarts == 1, 30, pipeline=p)
        assert p.broker.port == port and p.broker.alive()

        send(p.settings, events("restart", 300, trace="after"))
        assert wait_until(lambda: counts(p.clickhouse, db, "restart").joined == 600, 120,
                          pipeline=p), counts(p.clickhouse, db, "restart")
        assert stored(p, "restart")[1] == 600


def _read_all(bootstrap: str, topic: str, want: int, timeout_s: float = 30) -> set[str]:
    """Event ids on ``topic`` (all partitions, from the start), until ``want`` were seen."""
    from meterline.schemas import decode_raw

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"read-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    seen: set[str] = set()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and len(seen) < want:
            for msg in consumer.consume(1000, 0.5):
                if msg.error() is None:
                    record = decode_raw(msg.value() or b"")
                    if isinstance(record, ActionEvent):
                        seen.add(record.event_id)
    finally:
        consumer.close()
    return seen


def test_sdk_keeps_recording_while_the_broker_is_unreachable_and_delivers_when_it_returns(
    tmp_path: Any,
) -> None:
    """Nothing listens when the SDK starts; later the broker becomes unreachable mid-run (the
    network to it is cut by a proxy; the broker keeps its state, as Kafka would) and comes
    back. Recording never blocks or fails, and every record is delivered exactly once."""
    from meterline.embedded.broker import TansuBroker, free_port
    from meterline.ops.admin import ensure_topics
    from meterline.schemas import Topics
    from tests.integration.tcp_proxy import TcpProxy

    port = free_port()  # where the SDK looks for the broker: the proxy's port
    topics = Topics(f"sdk{uuid.uuid4().hex[:8]}")
    broker = TansuBroker(log_path=tmp_path / "tansu.log", advertised_port=port).start()
    proxy = TcpProxy(port, broker.port).start()
    ensure_topics(f"127.0.0.1:{port}", topics.raw, 4)  # as an operator would, beforehand
    proxy.cut()
    failures: list[str] = []
    client = MeterlineClient.from_kafka(
        f"127.0.0.1:{port}",
        topic_prefix=topics.prefix,
        on_delivery=lambda _r, err: failures.append(str(err)) if err else None,
        flush_at_exit=False,
    )
    try:
        # unreachable at start: recording returns at once and succeeds; records wait
        accepted = [client.record(ActionEvent(event_id=f"a{i}", name="t")) for i in range(500)]
        assert all(accepted) and client.stats.dropped == 0
        assert client.flush(2.0) > 0  # pending, not lost

        proxy.restore()
        assert client.flush(30) == 0 and client.stats.delivered == 500

        proxy.cut()  # the broker drops off the network mid-run
        accepted = [client.record(ActionEvent(event_id=f"b{i}", name="t")) for i in range(300)]
        assert all(accepted)
        assert client.flush(2.0) > 0
        proxy.restore()
        assert client.flush(60) == 0, client.stats
        assert client.stats.delivered == 800 and client.stats.failed == 0 and failures == []
        got = _read_all(broker.bootstrap, topics.actions, 800)
        assert got == {f"a{i}" for i in range(500)} | {f"b{i}" for i in range(300)}
    finally:
        client.close(5)
        proxy.cut()
        broker.stop()


def test_sdk_reports_every_record_it_could_not_deliver() -> None:
    """No broker within message.timeout.ms: each record is reported failed (stats and
    on_delivery), none silently lost."""
    from meterline.embedded.broker import free_port

    failures: list[str] = []
    client = MeterlineClient.from_kafka(
        f"127.0.0.1:{free_port()}",
        config={"message.timeout.ms": 2000},
        on_delivery=lambda _r, err: failures.append(str(err)) if err else None,
        flush_at_exit=False,
    )
    for i in range(20):
        assert client.record(ActionEvent(event_id=f"e{i}", name="t"))
    assert client.flush(20) == 0
    client.close(1)
    assert (client.stats.delivered, client.stats.failed, len(failures)) == (0, 20, 20)
    assert "timed out" in (client.stats.last_error or "").lower()


def test_sink_against_an_http_clickhouse_that_is_down_retries_and_commits_nothing(
    pipeline_factory: Any,
) -> None:
    """`meterline sink` pointed at http://127.0.0.1:<closed port>: it keeps retrying with
    backoff (logged), commits no offset, and stops cleanly on SIGTERM."""
    import os
    import signal
    import subprocess
    import sys
    from dataclasses import replace

    from meterline.embedded.broker import free_port

    p = pipeline_factory()
    send(p.settings, events("httpdown", 200))
    db = p.settings.database
    assert wait_until(lambda: counts(p.clickhouse, db, "httpdown").events == 200, 60, pipeline=p)

    down = replace(
        p.settings,
        sink_group=p.settings.sink_group + "-down",
        clickhouse_url=f"http://meterline:pw-for-tests@127.0.0.1:{free_port()}/",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("METERLINE_")}
    env.update(down.to_env())
    proc = subprocess.Popen(
        [sys.executable, "-m", "meterline.cli", "sink"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    retries: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(retries) < 3:
        line = proc.stdout.readline()
        if "unreachable" in line:
            retries.append(line)
    try:
        assert len(retries) == 3, retries
        assert "pw-for-tests" not in "".join(retries)  # the URL is logged redacted
        assert committed(down) == {}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert committed(down) == {}


def test_an_outage_longer_than_max_poll_interval_keeps_the_sink_in_its_group(
    settings: Settings, clickhouse: Any
) -> None:
    """ClickHouse down for three times ``max.poll.interval.ms``: the sink pauses its
    partitions and keeps polling, so it stays in its group (same member id, no revocation,
    no failed commit) and, once ClickHouse is back, writes every row once."""
    from tests.sinks.test_consumer import enriched, sink_for
    from tests.sinks.test_consumer import send as produce

    flaky = FlakyClickHouse(clickhouse)
    sink = sink_for(
        settings, flaky, retry_backoff_s=(0.1, 0.5),
        consumer_config={"session.timeout.ms": 2000, "heartbeat.interval.ms": 300,
                         "max.poll.interval.ms": 2000},
    )  # fmt: skip
    event = {"type": "action", "name": "n", "timestamp": "2026-11-01T00:00:05Z"}

    def batch(start: int, n: int) -> list[tuple[str, bytes]]:
        return [
            (settings.topics.enriched, enriched({**event, "event_id": f"e{i}", "project": "mp"}))
            for i in range(start, start + n)
        ]

    stop = threading.Event()
    thread = threading.Thread(target=sink.run, args=(stop,), daemon=True)
    thread.start()
    try:
        produce(settings, batch(0, 200))
        assert wait_until(lambda: sink.stats.rows["events"] == 200, 60)
        member = sink.member_id
        flaky.down.set()
        produce(settings, batch(200, 300))
        assert wait_until(lambda: sink.stats.write_failures >= 1, 30)
        time.sleep(6)  # three max.poll.interval.ms
        assert sink.member_id == member
        flaky.down.clear()
        assert wait_until(lambda: sink.stats.rows["events"] == 500, 60)
        assert wait_until(lambda: sum(committed(settings).values()) == 500, 30), committed(settings)
    finally:
        stop.set()
        thread.join(30)
    failures = sink.metrics.registry.get_sample_value("meterline_sink_commit_failures_total")
    assert failures == 0  # a sink that left the group fails to commit its batch
    ((rows, distinct),) = clickhouse.query(
        f"SELECT count(), uniqExact(event_id) FROM {settings.database}.events"
    ).result_rows
    assert (rows, distinct) == (500, 500)  # nothing lost, nothing written twice
    assert sink.stats.assignments == 1 and sink.stats.revocations <= 1  # close() may revoke
    assert flaky.refused >= 3

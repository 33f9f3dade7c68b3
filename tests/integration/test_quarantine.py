"""One tenant's unreadable records stop nobody else (issue 21 item 4), on real Tansu + chDB.

A project whose records are mostly invalid is quarantined (its records dead-lettered, a
metric and a log line say so), every other project keeps flowing, the worker never stops,
the quarantine ends by itself, and ``meterline replay-dead-letters`` re-produces what the
quarantine held back exactly once. ``meterline up``'s runtime restarts a worker that dies.
"""

from __future__ import annotations

import time
import urllib.request
from typing import Any

import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from meterline.demo.report import counts
from meterline.embedded.runtime import Pipeline
from meterline.ops.replay import run_replay
from meterline.producers import MeterlineProducer
from meterline.producers.partitioner import partition_for
from meterline.schemas import ActionEvent, ActionKind, encode, framing
from meterline.stream_processors.steps.quarantine import QUARANTINED
from tests.fixtures import wait_until

pytestmark = pytest.mark.integration

BAD_TRACE = "bad-trace"  # every record of bad on one partition: their order is the log's


def _event(project: str, i: int, trace_id: str | None = None) -> ActionEvent:
    return ActionEvent(
        project=project, event_id=f"{project}-{i}", name="tool", kind=ActionKind.TOOL_CALL,
        trace_id=trace_id or f"{project}-t{i % 7}",
    )  # fmt: skip


def _newer_sdk(i: int) -> bytes:
    """A record of an agent on a newer SDK: schema_version 2, a field this worker lacks."""
    body = encode(_event("bad", 10_000 + i, BAD_TRACE))
    return body.replace(b'"schema_version":1', b'"schema_version":2,"cost":{"usd":0.1}')


def _metrics(pipeline: Pipeline) -> dict[str, float]:
    assert wait_until(lambda: "processor-0" in pipeline.worker_urls(), 60, pipeline=pipeline)
    with urllib.request.urlopen(pipeline.worker_urls()["processor-0"] + "/metrics") as resp:
        text = resp.read().decode()
    return {
        s.name + "".join(f"|{k}={v}" for k, v in sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_tenant_on_a_newer_sdk_is_quarantined_and_every_other_tenant_flows(
    pipeline_factory: Any,
) -> None:
    pipeline = pipeline_factory(quarantine_s=12.0)
    s = pipeline.settings
    assert s.kafka_bootstrap
    ch, db = pipeline.clickhouse, s.database
    pid = pipeline.workers[0].pid
    sdk = MeterlineProducer(s.kafka_bootstrap, topics=s.topics)
    sdk.send_many(_event("good", i) for i in range(300))
    assert sdk.flush(30) == 0
    raw = Producer({"bootstrap.servers": s.kafka_bootstrap})
    partition = partition_for(BAD_TRACE.encode(), s.partitions)
    for batch in range(3):  # 1,200 records in three NDJSON batch messages
        lines = [_newer_sdk(batch * 400 + i) for i in range(400)]
        raw.produce(
            s.topics.actions, key=BAD_TRACE.encode(), value=framing.join(lines),
            partition=partition, headers=framing.BATCH_HEADERS,
        )  # fmt: skip
    assert raw.flush(30) == 0
    # valid records of bad right behind its storm: held back by the quarantine
    sdk.send_many(_event("bad", i, BAD_TRACE) for i in range(50))
    sdk.send_many(_event("good", i) for i in range(300, 600))
    assert sdk.flush(30) == 0

    def landed() -> bool:
        c = counts(ch, db, "good")
        return c.events == 600 and c.dead_letters == 1_250

    assert wait_until(landed, 120, pipeline=pipeline), counts(ch, db, "good")
    by_type = dict(
        ch.query(
            f"SELECT error_type, count() FROM {db}.dead_letters FINAL GROUP BY error_type"
        ).result_rows
    )
    assert by_type == {"unsupported_schema_version": 1_200, QUARANTINED: 50}
    reason = ch.query(
        f"SELECT any(reason) FROM {db}.dead_letters FINAL WHERE error_type = %(t)s",
        parameters={"t": QUARANTINED},
    ).result_rows[0][0]
    assert "project 'bad' quarantined until" in reason and "schema_version" in reason
    assert counts(ch, db, "bad").events == 0
    pipeline.check()  # raises if the worker exited
    assert pipeline.workers[0].pid == pid  # never stopped, never restarted
    m = _metrics(pipeline)
    assert m["meterline_processor_quarantines_total"] == 1
    assert m[f"meterline_processor_dead_letters_total|reason={QUARANTINED}"] == 50
    log = pipeline.workers[0].log_path.read_text()
    assert "project 'bad' quarantined until" in log

    # the quarantine ends by itself: bad's fixed agent flows again
    time.sleep(12.5)
    sdk.send_many(_event("bad", i, BAD_TRACE) for i in range(50, 60))
    assert sdk.close() == 0
    assert wait_until(lambda: counts(ch, db, "bad").events == 10, 60, pipeline=pipeline)
    assert "meterline_processor_quarantined|project=bad" not in _metrics(pipeline)
    assert "project 'bad' leaves quarantine" in pipeline.workers[0].log_path.read_text()

    # what the quarantine held back is replayed, once, however often the command runs
    for _ in range(2):
        assert run_replay(s, project="bad", error_type=QUARANTINED, client=ch) == 0
    assert wait_until(lambda: counts(ch, db, "bad").events == 60, 60, pipeline=pipeline)
    time.sleep(3)  # the second replay's records have had time to land, if they could
    assert counts(ch, db, "bad").events == 60
    assert counts(ch, db, "good").events == 600


def test_the_runtime_of_meterline_up_restarts_a_worker_that_dies(
    settings: Any, clickhouse: Any
) -> None:
    """``meterline up`` (restart=True) does not exit when a worker dies: it says so, starts
    a new one after a backoff, and the events sent meanwhile land."""
    pipeline = Pipeline(
        settings, clickhouse=clickhouse, restart=True, restart_backoff_s=(0.5, 5.0)
    ).start()
    try:
        assert settings.kafka_bootstrap
        first = pipeline.workers[0]
        first.kill()
        pipeline.check()  # never raises for a dead worker when restarting
        sdk = MeterlineProducer(settings.kafka_bootstrap, topics=pipeline.settings.topics)
        sdk.send_many(_event("up", i) for i in range(100))
        assert sdk.close() == 0
        ch, db = pipeline.clickhouse, settings.database
        assert wait_until(lambda: counts(ch, db, "up").events == 100, 120, pipeline=pipeline)
        assert pipeline.worker_restarts == 1 and pipeline.workers[0] is not first
        assert pipeline.workers[0].alive()
    finally:
        pipeline.stop()

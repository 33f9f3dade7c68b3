"""The analytics views through the real pipeline equal FINAL on the events table."""

from __future__ import annotations

from typing import Any

import pytest

from meterline.demo.report import counts
from meterline.demo.traffic import generate
from meterline.producers import MeterlineProducer
from meterline.schemas import ActionEvent
from tests.fixtures import wait_until
from tests.sinks.analytics import assert_views_equal_final

pytestmark = pytest.mark.integration


def test_usage_daily_and_event_counts_equal_final_on_demo_traffic(pipeline_factory: Any) -> None:
    pipeline = pipeline_factory(join_grace_s=0)  # early events go out unjoined at once
    traffic = generate(project="views", events=3_000, duplicate_rate=0.05, early_rate=0.25, seed=5)
    assert traffic.duplicates_sent and traffic.early_events  # replays and late joins happen
    assert pipeline.settings.kafka_bootstrap
    producer = MeterlineProducer(pipeline.settings.kafka_bootstrap, topics=pipeline.settings.topics)
    producer.send_many(traffic.records)
    assert producer.close() == 0 and producer.stats.failed == 0

    want, ch, db = len(traffic.unique_events), pipeline.clickhouse, pipeline.settings.database

    def done() -> bool:
        c = counts(ch, db, "views")
        return c.events == want and c.joined == want

    assert wait_until(done, 120, pipeline=pipeline), counts(ch, db, "views")
    # early events were written unjoined, then joined: the sink wrote more rows than events
    assert pipeline.sink is not None and pipeline.sink.stats.rows["events"] > want
    event_counts = assert_views_equal_final(ch, db)
    by_kind: dict[str, int] = {}
    for _project, _day, kind, events, joined, unjoined in event_counts:
        by_kind[kind] = by_kind.get(kind, 0) + events
        assert joined == events and unjoined == 0
    assert by_kind == dict(traffic.kinds())
    tokens = ch.command(f"SELECT sum(input_tokens) FROM {db}.usage_daily WHERE project = 'views'")
    sent = sum(e.input_tokens for e in traffic.unique_events.values() if isinstance(e, ActionEvent))
    assert tokens == sent

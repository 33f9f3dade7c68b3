"""The rule stage in the running stream (real Tansu + chDB): outcomes derived from the
events as they arrive equal the oracle, and a control-plane change takes effect without a
restart while a broken one is rejected and processing goes on."""

from __future__ import annotations

import shutil
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from meterline.demo.report import counts
from meterline.demo.traffic import generate
from meterline.producers import MeterlineProducer
from meterline.schemas import ActionEvent, Status, TrajectoryRecord
from tests.fixtures import wait_until
from tests.integration.test_outcomes_oracle import Row, oracle_outcomes
from tests.stream_processors.rules.fixtures import EXAMPLE

pytestmark = pytest.mark.integration


def live_outcomes(pipeline: Any, project: str) -> list[tuple[Any, ...]]:
    return [
        tuple(r)
        for r in pipeline.clickhouse.query(
            "SELECT rule_id, trace_id, if(user_id != '', user_id, anonymous_id), value, "
            f"config_version FROM {pipeline.settings.database}.outcomes FINAL "
            "WHERE retracted = 0 AND project = %(p)s",
            parameters={"p": project},
        ).result_rows
    ]


def test_outcomes_derived_in_the_stream_equal_the_oracle(
    pipeline_factory: Any, tmp_path: Path
) -> None:
    config = tmp_path / "control-plane.yaml"
    shutil.copy(EXAMPLE, config)
    pipeline = pipeline_factory(control_plane=config)
    project = "stream-rules"
    traffic = generate(
        project=project, events=2_500, users=10, duplicate_rate=0.05, early_rate=0.1, seed=23
    )
    assert pipeline.settings.kafka_bootstrap
    producer = MeterlineProducer(pipeline.settings.kafka_bootstrap, topics=pipeline.settings.topics)
    producer.send_many(traffic.records)
    assert producer.close() == 0
    want = {
        rule: rows for rule, rows in oracle_outcomes(traffic).items() if rule != "engaged_user"
    }  # user-scope rules span trajectories: backfill evaluates them (test_outcomes_oracle)
    assert len(want) == 4, "traffic should hit every trajectory rule"

    def got() -> dict[str, Counter[Row]]:
        found: dict[str, Counter[Row]] = defaultdict(Counter)
        for rule, trace, user, value, _ in live_outcomes(pipeline, project):
            found[rule][(trace, user, float(value))] += 1
        return dict(found)

    assert wait_until(lambda: got() == want, 120, pipeline=pipeline), (got(), want)
    c = counts(pipeline.clickhouse, pipeline.settings.database, project)
    assert c.events == len(traffic.unique_events)


def probe(pipeline: Any, project: str, amount: int) -> str:
    """One trajectory with a successful data_extraction of ``amount`` EUR; its trace id."""
    trace = f"probe-{uuid.uuid4().hex[:8]}"
    assert pipeline.settings.kafka_bootstrap
    producer = MeterlineProducer(pipeline.settings.kafka_bootstrap, topics=pipeline.settings.topics)
    producer.send_many(
        [
            TrajectoryRecord(project=project, trace_id=trace, user_id="u1"),
            ActionEvent(
                project=project, event_id=f"{trace}-x", trace_id=trace, name="data_extraction",
                status=Status.SUCCESS, properties={"amount": amount, "currency": "EUR"},
            ),
        ]
    )  # fmt: skip
    assert producer.close() == 0
    return trace


def rule_traces(pipeline: Any, project: str, rule: str) -> set[str]:
    return {t for r, t, *_ in live_outcomes(pipeline, project) if r == rule}


def test_a_rule_change_takes_effect_without_restart_and_a_broken_one_is_rejected(
    pipeline_factory: Any, tmp_path: Path
) -> None:
    config = tmp_path / "control-plane.yaml"
    original = EXAMPLE.read_text()
    config.write_text(original)
    pipeline = pipeline_factory(control_plane=config)
    project = "reload"

    # version 1: large_invoice needs amount >= 1000, so 500 EUR is not one
    small = probe(pipeline, project, 500)
    assert wait_until(
        lambda: counts(pipeline.clickhouse, pipeline.settings.database, project).events == 1,
        60, pipeline=pipeline,
    )  # fmt: skip
    assert small not in rule_traces(pipeline, project, "large_invoice")

    # version 2 adds a rule: every extraction is an "invoice seen", whatever the amount
    added = original.replace("version: 1", "version: 2", 1).replace(
        "outcome_rules:\n",
        "outcome_rules:\n"
        "  - id: invoice_seen\n"
        "    name: Invoice seen\n"
        "    steps:\n"
        "      - action: data_extraction\n",
        1,
    )
    config.write_text(added)
    seen: list[str] = []

    def new_rule_applies() -> bool:  # the watcher polls every 2 s: probe until it switched
        seen.append(probe(pipeline, project, 500))
        time.sleep(1)
        return bool(rule_traces(pipeline, project, "invoice_seen") & set(seen))

    assert wait_until(new_rule_applies, 90, pipeline=pipeline), "version 2 never took effect"
    versions = {v for r, _, _, _, v in live_outcomes(pipeline, project) if r == "invoice_seen"}
    assert versions == {2}

    # a broken version 3 (unknown operator) is rejected: version 2 keeps running
    config.write_text(added.replace("version: 2", "version: 3", 1).replace("op: gte", "op: ~~"))
    time.sleep(5)  # two polls of the watcher
    after = probe(pipeline, project, 500)
    assert wait_until(
        lambda: after in rule_traces(pipeline, project, "invoice_seen"), 60, pipeline=pipeline
    ), "processing stopped after a broken control plane"
    assert {v for r, _, _, _, v in live_outcomes(pipeline, project) if r == "invoice_seen"} == {2}

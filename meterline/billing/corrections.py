"""Answer the rule stage's correction requests: re-evaluate whole trajectories from ClickHouse.

The rule stage sends a late event of a trajectory whose rule state it has dropped to
``<prefix>.outcome-corrections`` instead of evaluating it alone; the sink lands the request
in ``outcome_corrections``. A round here:

1. takes the pending requests (``resolved = 0``) and the true end offsets of the sink's
   input topics (the request was produced after its late event was acknowledged, so the
   event is below those ends);
2. once the sink's group has committed up to those ends (:mod:`.watermark`) -- at once for
   :func:`run_once` with ``wait_s``, at the next round for :class:`Corrections` -- reads
   every event of each trajectory from ClickHouse and evaluates it with the same code as
   ``meterline backfill`` (:func:`~meterline.stream_processors.rules.evaluate_trajectory`), writes
   the outcomes with ``computed_at`` = now (higher than anything the stream wrote for the
   trajectory before it dropped its state) and retracts the trajectory's live outcomes
   that no longer hold;
3. marks each request resolved (version = the request's + 1: a newer request for the same
   trajectory stays pending).

Idempotent: answering a request twice writes the same outcomes again.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from meterline.billing import source
from meterline.billing.backfill import write_outcomes
from meterline.billing.watermark import NotLanded, Watermark
from meterline.schemas import ControlPlane, utc_now
from meterline.sinks.clickhouse.identifiers import check_identifier
from meterline.sinks.clickhouse.writer import ClickHouseWriter
from meterline.stream_processors.rules import evaluate_trajectory

log = logging.getLogger(__name__)

#: requests answered per round at most
MAX_PER_ROUND = 1_000

Request = tuple[str, str, int]  # project, trace_id, version


@dataclass(frozen=True)
class CorrectionsResult:
    requests: int  # answered this round
    outcomes: int
    retracted: int
    waiting: int  # pending, their events not landed yet


def pending(writer: ClickHouseWriter, limit: int = MAX_PER_ROUND) -> list[Request]:
    db = check_identifier(writer.database)
    rows = writer.client.query(
        f"SELECT project, trace_id, version FROM {db}.outcome_corrections FINAL "
        f"WHERE resolved = 0 ORDER BY requested_at LIMIT {int(limit)}"
    ).result_rows
    return [(str(p), str(t), int(v)) for p, t, v in rows]


def answer(
    writer: ClickHouseWriter, config: ControlPlane, requests: list[Request]
) -> CorrectionsResult:
    """Re-evaluate the trajectories of ``requests`` from ClickHouse; mark them resolved."""
    stamp = utc_now()
    by_project: dict[str, list[str]] = defaultdict(list)
    for project, trace, _ in requests:
        by_project[project].append(trace)
    user_rules = [r.id for r in config.outcome_rules if r.scope == "user"] or [""]
    made = gone = 0
    db = check_identifier(writer.database)
    for project, traces in sorted(by_project.items()):
        events = source.events_of_traces(writer.client, db, project, traces)
        found = evaluate_trajectory(config, events)
        where = "project = %(project)s AND has(%(traces)s, trace_id) AND rule_id NOT IN %(ex)s"
        params: dict[str, Any] = {"project": project, "traces": traces, "ex": user_rules}
        live = source.live_outcomes(writer.client, db, where, params)
        n, r = write_outcomes(writer, found, live, config, stamp)
        made, gone = made + n, gone + r
    resolved = [(p, t, "", stamp, 1, stamp, v + 1) for p, t, v in requests]
    writer.insert("outcome_corrections", resolved)
    return CorrectionsResult(len(requests), made, gone, 0)


def run_once(
    writer: ClickHouseWriter, config: ControlPlane, watermark: Watermark | None, wait_s: float
) -> CorrectionsResult:
    """One round that waits up to ``wait_s`` for the requests' events to land.

    Raises:
        NotLanded: the sink did not reach the offsets within ``wait_s``.
    """
    requests = pending(writer)
    if not requests:
        return CorrectionsResult(0, 0, 0, 0)
    if watermark is not None:
        targets = watermark.output_targets()
        late = watermark.wait(
            watermark.settings.sink_group, targets, time.monotonic() + max(0.0, wait_s)
        )
        if late:
            raise NotLanded(
                f"{len(requests)} correction requests wait for events not yet in ClickHouse "
                f"(sink behind: {', '.join(str(b) for b in late[:6])}); retry, or wait "
                "longer with --wait-s"
            )
    return answer(writer, config, requests)


class Corrections:
    """The rounds of the recompute loop: requests seen in one round are answered in a later
    one, once the sink has committed past the end offsets taken when they were seen."""

    def __init__(self, writer: ClickHouseWriter, watermark: Watermark | None) -> None:
        self.writer, self.watermark = writer, watermark
        self._waiting: list[Request] = []
        self._targets: dict[Any, int] = {}

    def run_once(self, config: ControlPlane) -> CorrectionsResult:
        result = CorrectionsResult(0, 0, 0, 0)
        wm = self.watermark
        if self._waiting and (wm is None or wm.outputs_landed(self._targets)):
            result = answer(self.writer, config, self._waiting)
            if result.requests:
                log.info(
                    "outcome corrections: %d trajectories re-evaluated, %d outcomes, "
                    "%d retracted", result.requests, result.outcomes, result.retracted,
                )  # fmt: skip
            self._waiting = []
        if not self._waiting:
            self._waiting = pending(self.writer)
            if self._waiting and wm is not None:
                self._targets = wm.output_targets()
        return CorrectionsResult(
            result.requests, result.outcomes, result.retracted, len(self._waiting)
        )

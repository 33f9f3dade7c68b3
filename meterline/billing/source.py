"""Read events, trajectories and user attributes back from ClickHouse as meterline records.

Every read uses ``FINAL`` (one row per key) and binds values as parameters.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson

from meterline.schemas import ActionEvent, EnrichedEvent, Event, TelemetryEvent, TrajectoryRecord
from meterline.schemas.outcomes import UserActivity, UserAttributes
from meterline.sinks.clickhouse.identifiers import check_identifier

#: The telemetry event type whose ``properties`` are a user's attributes (role, ...).
IDENTIFY = "identify"

_EVENT_COLUMNS = (
    "project, event_id, record_type, kind, name, trace_id, session_id, trajectory_id, "
    "user_id, anonymous_id, agent_id, status, timestamp, started_at, ended_at, duration_ms, "
    "model, provider, input_tokens, output_tokens, cached_tokens, cost_usd, error_type, "
    "error_message, parent_event_id, source, properties, metadata"
)
_PROJECT = " AND project = %(project)s"


def _params(start: datetime, end: datetime, project: str | None) -> dict[str, Any]:
    return {"start": start, "end": end, "project": project or ""}


def _project(project: str | None) -> str:
    return _PROJECT if project else ""


def _touched(db: str, project: str | None) -> str:
    """Subquery: the trajectories with an event in ``[start, end)``."""
    return (
        f"SELECT DISTINCT project, trace_id FROM {db}.events WHERE trace_id != '' "
        f"AND timestamp >= %(start)s AND timestamp < %(end)s{_project(project)}"
    )


def trace_events(
    client: Any, database: str, start: datetime, end: datetime, project: str | None = None
) -> list[EnrichedEvent]:
    """Every event of the trajectories that have an event in ``[start, end)``, each with
    its trajectory's user (as the stream's join gives it)."""
    db = check_identifier(database)
    where = f"(project, trace_id) IN ({_touched(db, project)})"
    return _trajectory_events(client, db, where, _params(start, end, project))


def events_of_traces(
    client: Any, database: str, project: str, trace_ids: list[str]
) -> list[EnrichedEvent]:
    """Every event of the trajectories ``trace_ids`` of ``project``, with their user."""
    db = check_identifier(database)
    where = "project = %(project)s AND has(%(traces)s, trace_id)"
    return _trajectory_events(client, db, where, {"project": project, "traces": trace_ids})


def _trajectory_events(
    client: Any, db: str, where: str, params: dict[str, Any]
) -> list[EnrichedEvent]:
    rows = client.query(
        f"SELECT {_EVENT_COLUMNS} FROM {db}.events FINAL WHERE {where}", parameters=params
    ).named_results()
    trajectories = {
        (r[0], r[1]): TrajectoryRecord(
            project=r[0], trace_id=r[1], user_id=r[2] or None, anonymous_id=r[3] or None
        )
        for r in client.query(
            f"SELECT project, trace_id, user_id, anonymous_id FROM {db}.trajectories FINAL "
            f"WHERE {where}",
            parameters=params,
        ).result_rows
    }
    out = []
    for row in rows:
        event = event_of(row)
        traj = trajectories.get((event.project, event.trace_id or ""))
        out.append(EnrichedEvent(event=event, trajectory=traj, version=2 if traj else 1))
    return out


def user_events(
    client: Any, database: str, start: datetime, end: datetime, project: str | None = None
) -> list[Event]:
    """Events in ``[start, end)`` that name a user (for ``scope: user`` rules)."""
    db = check_identifier(database)
    rows = client.query(
        f"SELECT {_EVENT_COLUMNS} FROM {db}.events FINAL WHERE timestamp >= %(start)s "
        f"AND timestamp < %(end)s AND (user_id != '' OR anonymous_id != ''){_project(project)}",
        parameters=_params(start, end, project),
    ).named_results()
    return [event_of(r) for r in rows]


def event_of(row: dict[str, Any]) -> Event:
    """An events-table row as the record the stream saw (empty strings are None)."""
    data = {k: (None if v == "" else v) for k, v in row.items()}
    data["properties"] = orjson.loads(row["properties"] or "{}")
    data["metadata"] = orjson.loads(row["metadata"] or "{}")
    for key in ("record_type", "trajectory_id"):
        data.pop(key)
    if row["record_type"] == "telemetry":
        data["event_type"] = data.pop("name")
        data["trajectory_id"] = row["trajectory_id"] or None
        keep = set(TelemetryEvent.model_fields)
        return TelemetryEvent.model_validate({k: v for k, v in data.items() if k in keep})
    return ActionEvent.model_validate(
        {k: v for k, v in data.items() if k in ActionEvent.model_fields}
    )


def activity(
    client: Any, database: str, start: datetime, end: datetime, project: str | None = None
) -> list[UserActivity]:
    db = check_identifier(database)
    rows = client.query(
        "SELECT project, if(user_id != '', user_id, anonymous_id) AS who, timestamp, name, "
        f"record_type FROM {db}.events FINAL WHERE timestamp >= %(start)s "
        f"AND timestamp < %(end)s AND who != ''{_project(project)}",
        parameters=_params(start, end, project),
    ).result_rows
    return [
        UserActivity(project=p, user=u, timestamp=t, name=n, source_type=s)
        for p, u, t, n, s in rows
    ]


def attributes(
    client: Any, database: str, end: datetime, project: str | None = None
) -> list[UserAttributes]:
    """User attributes: the ``properties`` of ``identify`` telemetry events before ``end``."""
    db = check_identifier(database)
    rows = client.query(
        "SELECT project, if(user_id != '', user_id, anonymous_id) AS who, properties, "
        f"timestamp FROM {db}.events FINAL WHERE record_type = 'telemetry' "
        f"AND name = %(identify)s AND timestamp < %(end)s AND who != ''{_project(project)}",
        parameters={"end": end, "project": project or "", "identify": IDENTIFY},
    ).result_rows
    return [
        UserAttributes(project=p, user=u, attributes=_object(props), updated_at=t)
        for p, u, props, t in rows
    ]


def _object(text: str) -> dict[str, Any]:
    value = orjson.loads(text or "{}")
    return value if isinstance(value, dict) else {}


def trace_outcomes(
    client: Any, database: str, start: datetime, end: datetime, project: str | None,
    exclude_rules: list[str],
) -> Iterable[dict[str, Any]]:  # fmt: skip
    """Live outcomes of the trajectories with an event in ``[start, end)``, but for
    ``exclude_rules`` (the user-scope rules)."""
    db = check_identifier(database)
    params = {**_params(start, end, project), "exclude": exclude_rules or [""]}
    where = f"(project, trace_id) IN ({_touched(db, project)}) AND rule_id NOT IN %(exclude)s"
    return live_outcomes(client, db, where, params)


def live_outcomes(
    client: Any, database: str, where: str, params: dict[str, Any]
) -> Iterable[dict[str, Any]]:
    """Non-retracted outcome rows; ``where`` is a constant condition written in code."""
    db = check_identifier(database)
    rows = client.query(
        f"SELECT * FROM {db}.outcomes FINAL WHERE retracted = 0 AND {where}", parameters=params
    ).named_results()
    return list(rows)

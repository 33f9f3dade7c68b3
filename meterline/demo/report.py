"""Read the demo's numbers back from ClickHouse (one project) and print them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from meterline.sinks.clickhouse.identifiers import check_identifier


@dataclass(frozen=True)
class Counts:
    events: int
    joined: int
    trajectories: int
    dead_letters: int


def counts(client: Any, database: str, project: str) -> Counts:
    db = check_identifier(database)
    ev = client.query(
        f"SELECT count(), countIf(joined = 1) FROM {db}.events FINAL WHERE project = %(p)s",
        parameters={"p": project},
    ).result_rows[0]
    tr = client.query(
        f"SELECT count() FROM {db}.trajectories FINAL WHERE project = %(p)s",
        parameters={"p": project},
    ).result_rows[0]
    dl = client.query(f"SELECT count() FROM {db}.dead_letters FINAL").result_rows[0]
    return Counts(
        events=int(ev[0]), joined=int(ev[1]), trajectories=int(tr[0]), dead_letters=int(dl[0])
    )


def by_kind(client: Any, database: str, project: str) -> list[tuple[str, int]]:
    db = check_identifier(database)
    rows = client.query(
        f"SELECT kind, count() FROM {db}.events FINAL WHERE project = %(p)s "
        "GROUP BY kind ORDER BY kind",
        parameters={"p": project},
    ).result_rows
    return [(str(k), int(n)) for k, n in rows]


def llm_usage_by_user(client: Any, database: str, project: str) -> list[tuple[Any, ...]]:
    db = check_identifier(database)
    return list(
        client.query(
            "SELECT user_id, count(), sum(input_tokens), sum(output_tokens), "
            f"round(sum(cost_usd), 4) FROM {db}.events FINAL "
            "WHERE project = %(p)s AND kind = 'llm_call' "
            "GROUP BY user_id ORDER BY user_id",
            parameters={"p": project},
        ).result_rows
    )

"""``meterline replay-dead-letters``: re-produce a project's dead-lettered originals.

Reads ``dead_letters`` in ClickHouse (the original bytes are in ``payload_base64``; the
project is read from them, ``default`` when they name none), and produces each original,
as one message of its own, to the raw topic it came from with its original key (the same
partitioner as the SDK; for a record from a batch message, the batch's key, which maps to
the same partition: it lands in the partition its trajectory is on). Exact: the
processor's dedupe drops what was already admitted, so a replay run twice, or a record that
was both dead-lettered and later re-sent, is counted once. A record that is still invalid
is dead-lettered again (a new row, at its new offset).

Run it after the cause is fixed (a worker that knows the newer ``schema_version``) and
after the project has left quarantine (the worker logs "leaves quarantine"; the
``meterline_processor_quarantined`` gauge drops): replayed into a quarantine, the records
are dead-lettered again.

Exit codes: 0 done (also when nothing matched), 1 ClickHouse or Kafka unavailable or
refused, 2 bad arguments.
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Callable
from typing import Any

from meterline.ops.endpoints import read_endpoints
from meterline.settings import Settings

Out = Callable[[str], None]

_SQL = """
SELECT source_topic, key, payload_base64
FROM {db}.dead_letters FINAL
WHERE source_topic IN {{topics:Array(String)}}
  AND if(JSONHas(base64Decode(payload_base64), 'project'),
         JSONExtractString(base64Decode(payload_base64), 'project'), 'default')
      = {{project:String}}
  {reason}
ORDER BY source_topic, partition, offset, item
"""


def dead_letters_of(
    client: Any, settings: Settings, project: str, error_type: str | None
) -> list[tuple[str, bytes | None, bytes]]:
    """``(raw topic, key or None, original bytes)`` of ``project``'s dead letters from the
    raw topics (``error_type``: only those), in log order."""
    from meterline.sinks.clickhouse.identifiers import check_identifier

    params: dict[str, Any] = {"topics": list(settings.topics.raw), "project": project}
    reason = ""
    if error_type:
        reason, params["error_type"] = "AND error_type = {error_type:String}", error_type
    sql = _SQL.format(db=check_identifier(settings.database), reason=reason)
    rows = client.query(sql, parameters=params).result_rows
    return [(t, k.encode() if k else None, base64.b64decode(p)) for t, k, p in rows]


def run_replay(
    settings: Settings, *, project: str, error_type: str | None, dry_run: bool = False,
    out: Out = print, client: Any | None = None,
) -> int:  # fmt: skip
    """``client``: the ClickHouse to read (None: the one ``settings`` name, or the query
    endpoint of a ``meterline up`` holding its chDB)."""
    from meterline.billing.client import open_client
    from meterline.billing.errors import BillingError

    try:
        client = client if client is not None else open_client(settings)
        letters = dead_letters_of(client, settings, project, error_type)
    except BillingError as exc:
        return _fail(str(exc), 1)
    except Exception as exc:  # clickhouse-connect raises several unrelated types
        return _fail(f"query failed: {exc}", 1)
    what = f"project {project!r}" + (f", error type {error_type!r}" if error_type else "")
    if dry_run or not letters:
        out(f"{len(letters)} dead letters of {what} would be replayed" if dry_run
            else f"no dead letters of {what} on {', '.join(settings.topics.raw)}")  # fmt: skip
        return 0
    running = read_endpoints(settings.effective_run_dir)
    up = next((e for e in running if e.get("name") == "up"), {})
    bootstrap = settings.kafka_bootstrap or up.get("kafka_bootstrap")
    if not bootstrap:
        return _fail("set METERLINE_KAFKA_BOOTSTRAP (or --kafka-bootstrap), or start "
                     "`meterline up` on this data dir", 2)  # fmt: skip
    failed = _produce(str(bootstrap), settings, letters)
    if failed:
        return _fail(f"{failed} of {len(letters)} records not delivered; run it again "
                     "(dedupe drops the ones that were)", 1)  # fmt: skip
    out(f"replayed {len(letters)} dead letters of {what} to their raw topics")
    return 0


def _produce(
    bootstrap: str, settings: Settings, letters: list[tuple[str, bytes | None, bytes]]
) -> int:
    """Produce every original; returns how many were not delivered."""
    from meterline.producers import MeterlineProducer

    producer = MeterlineProducer(
        bootstrap, topics=settings.topics, config=settings.kafka_client_config()
    )
    for topic, key, value in letters:
        producer.send_bytes(topic, key, value)  # one message each, never framed
    return producer.close() + producer.stats.failed


def _fail(message: str, code: int) -> int:
    print(f"meterline replay-dead-letters: {message}", file=sys.stderr)
    return code

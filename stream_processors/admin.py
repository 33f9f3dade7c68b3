"""Topic administration: create meterline's topics (idempotent) and check co-partitioning."""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from stream_processors.errors import RuntimeFailure
from stream_processors.output import MAX_MESSAGE_BYTES

#: Every meterline topic accepts the processor's largest output message (a broker's default
#: is ~1 MB, less than an enriched event near the 1 MB record limit).
TOPIC_CONFIG = {"max.message.bytes": str(MAX_MESSAGE_BYTES)}


def ensure_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int,
    replication_factor: int = 1,
    timeout_s: float = 30.0,
    config: dict[str, str] | None = None,
) -> None:
    """Create missing topics; fail if an existing one has another partition count.

    Raw topics must share one partition count: the trace_id join relies on it. ``config``:
    extra librdkafka settings (access: ``Settings.kafka_client_config()``).
    """
    admin = AdminClient(
        {"bootstrap.servers": bootstrap, "log.connection.close": False, **(config or {})}
    )
    wanted = list(names)
    existing = admin.list_topics(timeout=timeout_s).topics
    missing = [n for n in wanted if n not in existing]
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(n, partitions, replication_factor, config=TOPIC_CONFIG)
                for n in missing
            ],
            operation_timeout=timeout_s,
        )
        for name, future in futures.items():
            try:
                future.result()
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise RuntimeFailure(f"could not create topic {name}: {exc}") from exc
    for name in wanted:
        if name in existing:
            count = len(existing[name].partitions)
            if count != partitions:
                raise RuntimeFailure(
                    f"topic {name} has {count} partitions, expected {partitions}: "
                    "meterline's topics must be co-partitioned (same partition count)"
                )

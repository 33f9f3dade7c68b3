"""Topic administration: create meterline's topics (idempotent) and check co-partitioning.

The worker process (:mod:`meterline.ops.processor`) creates its table changelog topics
(``meterline.stream_processors.config.changelog_topics``) with this too, before Faust starts,
with the same ``max.message.bytes`` and replication factor as meterline's own topics (a
broker's default ``max.message.bytes`` is ~1 MB) and ``cleanup.policy=compact`` as Faust
would create them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from meterline.errors import RuntimeFailure
from meterline.stream_processors.faust_layer.output import MAX_MESSAGE_BYTES

#: Every meterline topic accepts the processor's largest output message (a broker's default
#: is ~1 MB, less than an enriched event near the 1 MB record limit).
TOPIC_CONFIG = {"max.message.bytes": str(MAX_MESSAGE_BYTES)}

def topic_config(max_message_bytes: int = MAX_MESSAGE_BYTES) -> dict[str, str]:
    return {"max.message.bytes": str(max_message_bytes)}


def changelog_config(max_message_bytes: int = MAX_MESSAGE_BYTES) -> dict[str, str]:
    return {**topic_config(max_message_bytes), "cleanup.policy": "compact"}


def ensure_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int,
    replication_factor: int = 1,
    timeout_s: float = 30.0,
    config: dict[str, str] | None = None,
    topic_configs: Mapping[str, str] | None = None,
) -> None:
    """Create missing topics; fail if an existing one has another partition count.

    Raw topics must share one partition count: the trace_id join relies on it. ``config``:
    extra librdkafka settings (access: ``Settings.kafka_client_config()``). ``topic_configs``:
    the new topics' configs (default :data:`TOPIC_CONFIG`); existing topics are not altered.
    """
    admin = AdminClient(
        {"bootstrap.servers": bootstrap, "log.connection.close": False, **(config or {})}
    )
    wanted = list(names)
    existing = admin.list_topics(timeout=timeout_s).topics
    missing = [n for n in wanted if n not in existing]
    configs = dict(TOPIC_CONFIG if topic_configs is None else topic_configs)
    if missing:
        futures = admin.create_topics(
            [NewTopic(n, partitions, replication_factor, config=configs) for n in missing],
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

"""The processor's own configuration: what :mod:`meterline.stream_processors.worker` needs,
nothing read from the environment.

The product shell builds it (``Settings.processor_config()``); tests build it directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from meterline.schemas import Topics

#: The worker's Faust tables; each has the changelog topic ``<app id>-<name>-changelog``.
#: ``rule-state`` exists only with a control plane.
TABLES = ("dedupe-window", "trajectories", "pending-events", "rule-state")


def changelog_topics(app_id: str) -> tuple[str, ...]:
    """The changelog topic of each table in :data:`TABLES` (Faust's naming)."""
    return tuple(f"{app_id}-{name}-changelog" for name in TABLES)


@dataclass(frozen=True)
class ProcessorConfig:
    """Where a worker reads and writes, its group, its state and its limits.

    ``kafka_access`` holds librdkafka access settings (security protocol, SASL, CA), merged
    into every Kafka client of the worker next to ``bootstrap.servers`` (and turned into
    Faust's credentials); secrets in it never appear in ``repr``. ``data_dir`` is Faust's own
    data directory (table stores, lock files), one per worker. A ratio of None is no limit.
    """

    kafka_bootstrap: str | None = None
    topics: Topics = field(default_factory=Topics)
    partitions: int = 4
    #: replication factor and ``max.message.bytes`` of the table changelogs (as meterline's
    #: own topics)
    replication_factor: int = 1
    max_message_bytes: int = 8 * 1_048_576
    app_id: str = "meterline-processor"
    data_dir: Path = Path(".meterline/faust")
    store: str = "memory://"
    control_plane: Path | None = None
    dedupe_window_s: int = 7 * 86_400
    join_grace_s: float = 10.0
    trajectory_idle_timeout_s: float = 3_600.0
    trajectory_retention_s: float = 7 * 86_400.0
    join_sweep_interval_s: float = 1.0
    dlq_max_ratio: float | None = 0.5
    quarantine_s: float = 300.0
    rule_end_grace_s: float = 300.0
    rule_idle_s: float = 3_600.0
    rule_forget_s: float = 86_400.0
    rule_max_events: int = 1_000
    commit_resolve_after_s: float = 30.0
    session_timeout_s: float = 6.0
    heartbeat_interval_s: float = 0.5
    kafka_access: dict[str, str] = field(default_factory=dict)

    @property
    def changelog_topics(self) -> tuple[str, ...]:
        return changelog_topics(self.app_id)

    def client_config(self) -> dict[str, Any]:
        """``bootstrap.servers`` and the access settings, for a confluent-kafka client."""
        return {"bootstrap.servers": self.kafka_bootstrap, **self.kafka_access}

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "kafka_access":
                value = sorted(value)  # keys only: values may be secrets
            parts.append(f"{f.name}={value!r}")
        return f"ProcessorConfig({', '.join(parts)})"

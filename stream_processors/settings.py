"""Runtime settings for processors, sink and the embedded runtime, read from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from schemas import Topics

ENV_PREFIX = "METERLINE_"


@dataclass(frozen=True)
class Settings:
    """Where the services are and how topics are laid out.

    ``kafka_bootstrap`` / ``clickhouse_url`` left unset mean "embedded": ``meterline up``
    starts a Tansu broker and uses chDB under ``data_dir``.
    """

    kafka_bootstrap: str | None = None
    clickhouse_url: str | None = None
    data_dir: Path = Path(".meterline")
    topic_prefix: str = "meterline"
    partitions: int = 4
    app_id: str = "meterline-processor"
    sink_group: str = "meterline-sink"
    database: str = "meterline"
    log_level: str = "warn"
    # dedupe window in seconds of event time (default 7 days); older repeats are left to
    # ClickHouse's ReplacingMergeTree
    dedupe_window_s: int = 7 * 86_400
    # Faust table store: memory:// (state rebuilt from changelogs on start) or rocksdb://
    # (on disk under data_dir, needs the `rocksdb` extra)
    store: str = "memory://"
    # stop when more than this share of the last 1,000 records is invalid (0 = no limit)
    dlq_max_ratio: float = 0.5
    # consumer-group timing; low values make group joins fast (a join waits ~half the session)
    session_timeout_s: float = 6.0
    heartbeat_interval_s: float = 0.5
    # the control-plane YAML (METERLINE_CONTROL_PLANE); None: no rules, no seats
    control_plane: Path | None = None
    # seconds between seat recomputes (and display-name syncs) in `meterline up`
    recompute_interval_s: float = 60.0

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    @property
    def effective_clickhouse_url(self) -> str:
        if self.clickhouse_url:
            return self.clickhouse_url
        return f"chdb://{(self.data_dir / 'clickhouse').resolve()}"

    @property
    def faust_datadir(self) -> Path:
        return self.data_dir / "faust"

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with every non-None keyword applied (CLI flags over environment)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        base = cls()

        def get(name: str) -> str | None:
            value = env.get(ENV_PREFIX + name)
            return value if value not in (None, "") else None

        return cls(
            kafka_bootstrap=get("KAFKA_BOOTSTRAP"),
            clickhouse_url=get("CLICKHOUSE_URL"),
            data_dir=Path(get("DATA_DIR") or base.data_dir),
            topic_prefix=get("TOPIC_PREFIX") or base.topic_prefix,
            partitions=int(get("PARTITIONS") or base.partitions),
            app_id=get("APP_ID") or base.app_id,
            sink_group=get("SINK_GROUP") or base.sink_group,
            database=get("DATABASE") or base.database,
            log_level=get("LOG_LEVEL") or base.log_level,
            dedupe_window_s=int(get("DEDUPE_WINDOW_S") or base.dedupe_window_s),
            store=get("STORE") or base.store,
            dlq_max_ratio=float(get("DLQ_MAX_RATIO") or base.dlq_max_ratio),
            session_timeout_s=float(get("SESSION_TIMEOUT_S") or base.session_timeout_s),
            heartbeat_interval_s=float(get("HEARTBEAT_INTERVAL_S") or base.heartbeat_interval_s),
            control_plane=Path(cp) if (cp := get("CONTROL_PLANE")) else None,
            recompute_interval_s=float(get("RECOMPUTE_INTERVAL_S") or base.recompute_interval_s),
        )

    def to_env(self) -> dict[str, str]:
        """The environment a child process needs to rebuild these settings."""
        env = {
            "DATA_DIR": str(self.data_dir),
            "TOPIC_PREFIX": self.topic_prefix,
            "PARTITIONS": str(self.partitions),
            "APP_ID": self.app_id,
            "SINK_GROUP": self.sink_group,
            "DATABASE": self.database,
            "LOG_LEVEL": self.log_level,
            "DEDUPE_WINDOW_S": str(self.dedupe_window_s),
            "STORE": self.store,
            "DLQ_MAX_RATIO": str(self.dlq_max_ratio),
            "SESSION_TIMEOUT_S": str(self.session_timeout_s),
            "HEARTBEAT_INTERVAL_S": str(self.heartbeat_interval_s),
            "RECOMPUTE_INTERVAL_S": str(self.recompute_interval_s),
        }
        if self.control_plane:
            env["CONTROL_PLANE"] = str(self.control_plane)
        if self.kafka_bootstrap:
            env["KAFKA_BOOTSTRAP"] = self.kafka_bootstrap
        if self.clickhouse_url:
            env["CLICKHOUSE_URL"] = self.clickhouse_url
        return {ENV_PREFIX + k: v for k, v in env.items()}

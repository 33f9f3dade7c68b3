"""Runtime settings for processors, sink and the embedded runtime, read from the environment.

Secrets (the Kafka SASL password, a password in the ClickHouse URL) never appear in
``repr``/``str`` of :class:`Settings`; they do travel in :meth:`Settings.to_env`, which is
for child processes only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from meterline.schemas import Topics
from meterline.schemas.access import kafka_access_config
from meterline.sinks.config import SinkConfig
from meterline.stream_processors.config import ProcessorConfig

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
    # replication factor of every topic meterline creates: raw, outputs and the worker's
    # table changelogs (3 on a production cluster)
    replication_factor: int = 1
    # max.message.bytes of every topic meterline creates (outputs are larger than the records
    # they come from); the worker reads each topic's actual limit from the broker at start
    max_message_bytes: int = 8 * 1_048_576
    app_id: str = "meterline-processor"
    sink_group: str = "meterline-sink"
    database: str = "meterline"
    log_level: str = "warn"
    # dedupe window in seconds of event time (default 7 days); older repeats are left to
    # ClickHouse's ReplacingMergeTree
    dedupe_window_s: int = 7 * 86_400
    # an event that arrives before its trajectory waits this long (processing time) to go
    # out joined; after it, it goes out unjoined and is re-emitted joined if the trajectory
    # comes later (0 = out at once)
    join_grace_s: float = 10.0
    # a trajectory not updated for this long is closed (status timed_out if it never ended)
    # and kept as a closed record for trajectory_retention_s
    trajectory_idle_timeout_s: float = 3_600.0
    # how long a closed trajectory is remembered after its idle close (a later event joins
    # with it, a later record reopens it at a higher version); then forgotten
    trajectory_retention_s: float = 7 * 86_400.0
    # how often the grace and idle timers run
    join_sweep_interval_s: float = 1.0
    # Faust table store: memory:// (state rebuilt from changelogs on start) or rocksdb://
    # (on disk under data_dir, needs the `rocksdb` extra)
    store: str = "memory://"
    # quarantine a project when more than this share of its last 1,000-2,000 records is
    # invalid (at least 100 seen), for quarantine_s seconds: its records are dead-lettered,
    # every other project goes on (steps/quarantine.py; 0 = never quarantine)
    dlq_max_ratio: float = 0.5
    quarantine_s: float = 300.0
    # the sink holds a batch instead of dead-lettering the rows ClickHouse refuses when more
    # than this many are refused in it, or more than this share of the last ~1,000 rows
    # (0 = no share limit): sinks/isolate.py
    sink_max_rejected: int = 100
    sink_reject_max_ratio: float = 0.5
    # the sink holds a partition instead of dead-lettering records it cannot decode when more
    # than this share of the last ~1,000 is undecodable (0 = no limit); records of a newer
    # schema_version are always held (sinks/batch.py)
    sink_undecodable_max_ratio: float = 0.5
    # a raw partition whose offset commit is held this long on a record that is not being
    # processed is resolved from the log: a proven gap, or a re-read
    # (stream_processors/faust_layer/commits.py)
    commit_resolve_after_s: float = 30.0
    # a worker whose raw partitions have lag while it fetches and processes nothing for this
    # long is stalled: readiness fails, it logs its state and tries to resume itself
    # (stream_processors/faust_layer/stall.py); 0 = no watch
    worker_stall_s: float = 60.0
    # consumer-group timing; low values make group joins fast (a join waits ~half the session)
    session_timeout_s: float = 6.0
    heartbeat_interval_s: float = 0.5
    # Prometheus metrics, /healthz and /readyz over HTTP: 0 = an ephemeral port (written to
    # <run dir>/<process>.json), N = port N (embedded workers take N+1+index), None = off
    metrics_port: int | None = 0
    metrics_host: str = "127.0.0.1"
    # "text" or "json" (one JSON object per line)
    log_format: str = "text"
    # where running processes write their endpoint files (default <data dir>/run)
    run_dir: Path | None = None
    # the control-plane YAML (METERLINE_CONTROL_PLANE); None: no rules, no seats
    control_plane: Path | None = None
    # seconds between seat recomputes (and display-name syncs, and outcome-correction
    # rounds) in `meterline up` / `meterline sink`
    recompute_interval_s: float = 60.0
    # rule stage (stream_processors/rules/stage.py): a trajectory's rule state is dropped
    # this long (processing time) after its end record, or after rule_idle_s without events
    rule_end_grace_s: float = 300.0
    rule_idle_s: float = 3_600.0
    # a dropped trajectory leaves a small marker this long; a relevant event for it is sent
    # to the correction path (re-evaluation from ClickHouse) instead of evaluated alone
    rule_forget_s: float = 86_400.0
    # relevant events kept per trajectory; past it events are not kept (counted over_cap)
    rule_max_events: int = 1_000
    # Kafka access (every Kafka client: SDK, Faust, processor output, sink, admin).
    # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL; unset = PLAINTEXT
    kafka_security_protocol: str | None = None
    kafka_sasl_mechanism: str | None = None  # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None  # never in repr/str
    kafka_ssl_ca_location: str | None = None  # CA bundle (PEM) to verify the brokers

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    @property
    def effective_clickhouse_url(self) -> str:
        if self.clickhouse_url:
            return self.clickhouse_url
        return f"chdb://{(self.data_dir / 'clickhouse').resolve()}"

    def sink_config(self) -> SinkConfig:
        """The sink's own configuration (a ratio of 0 means no ratio limit)."""
        return SinkConfig(
            clickhouse_url=self.effective_clickhouse_url,
            database=self.database,
            kafka_bootstrap=self.kafka_bootstrap,
            topics=self.topics,
            group_id=self.sink_group,
            session_timeout_s=self.session_timeout_s,
            heartbeat_interval_s=self.heartbeat_interval_s,
            kafka_access=self.kafka_client_config(),
            max_rejected=self.sink_max_rejected,
            reject_max_ratio=self.sink_reject_max_ratio or None,
            undecodable_max_ratio=self.sink_undecodable_max_ratio or None,
        )

    def processor_config(self) -> ProcessorConfig:
        """A processor worker's own configuration (a ratio of 0 means no ratio limit)."""
        return ProcessorConfig(
            kafka_bootstrap=self.kafka_bootstrap,
            topics=self.topics,
            partitions=self.partitions,
            replication_factor=self.replication_factor,
            max_message_bytes=self.max_message_bytes,
            app_id=self.app_id,
            data_dir=self.faust_datadir,
            store=self.store,
            control_plane=self.control_plane,
            dedupe_window_s=self.dedupe_window_s,
            join_grace_s=self.join_grace_s,
            trajectory_idle_timeout_s=self.trajectory_idle_timeout_s,
            trajectory_retention_s=self.trajectory_retention_s,
            join_sweep_interval_s=self.join_sweep_interval_s,
            dlq_max_ratio=self.dlq_max_ratio or None,
            quarantine_s=self.quarantine_s,
            rule_end_grace_s=self.rule_end_grace_s,
            rule_idle_s=self.rule_idle_s,
            rule_forget_s=self.rule_forget_s,
            rule_max_events=self.rule_max_events,
            commit_resolve_after_s=self.commit_resolve_after_s,
            session_timeout_s=self.session_timeout_s,
            heartbeat_interval_s=self.heartbeat_interval_s,
            kafka_access=self.kafka_client_config(),
        )

    def kafka_client_config(self) -> dict[str, str]:
        """librdkafka settings for access (security protocol, SASL, CA); empty = PLAINTEXT.

        Merge into every confluent-kafka client config next to ``bootstrap.servers``.
        """
        return kafka_access_config(
            self.kafka_security_protocol,
            self.kafka_sasl_mechanism,
            self.kafka_sasl_username,
            self.kafka_sasl_password,
            self.kafka_ssl_ca_location,
        )

    def faust_credentials(self) -> Any:
        """The same access for Faust/aiokafka: ``faust.SASLCredentials``,
        ``faust.SSLCredentials`` or None (PLAINTEXT)."""
        from meterline.stream_processors.worker import faust_credentials

        return faust_credentials(self.kafka_client_config())

    def __repr__(self) -> str:
        shown = []
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name == "kafka_sasl_password" and value is not None:
                value = "***"
            elif name == "clickhouse_url" and value is not None:
                value = redact_password(value)
            shown.append(f"{name}={value!r}")
        return f"Settings({', '.join(shown)})"

    __str__ = __repr__

    @property
    def effective_run_dir(self) -> Path:
        return self.run_dir if self.run_dir is not None else self.data_dir / "run"

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
            replication_factor=int(get("REPLICATION_FACTOR") or base.replication_factor),
            max_message_bytes=int(get("MAX_MESSAGE_BYTES") or base.max_message_bytes),
            app_id=get("APP_ID") or base.app_id,
            sink_group=get("SINK_GROUP") or base.sink_group,
            database=get("DATABASE") or base.database,
            log_level=get("LOG_LEVEL") or base.log_level,
            dedupe_window_s=int(get("DEDUPE_WINDOW_S") or base.dedupe_window_s),
            join_grace_s=float(get("JOIN_GRACE_S") or base.join_grace_s),
            trajectory_idle_timeout_s=float(
                get("TRAJECTORY_IDLE_TIMEOUT_S") or base.trajectory_idle_timeout_s
            ),
            trajectory_retention_s=float(
                get("TRAJECTORY_RETENTION_S") or base.trajectory_retention_s
            ),
            join_sweep_interval_s=float(get("JOIN_SWEEP_INTERVAL_S") or base.join_sweep_interval_s),
            store=get("STORE") or base.store,
            dlq_max_ratio=float(get("DLQ_MAX_RATIO") or base.dlq_max_ratio),
            quarantine_s=float(get("QUARANTINE_S") or base.quarantine_s),
            sink_max_rejected=int(get("SINK_MAX_REJECTED") or base.sink_max_rejected),
            sink_reject_max_ratio=float(get("SINK_REJECT_MAX_RATIO") or base.sink_reject_max_ratio),
            sink_undecodable_max_ratio=float(
                get("SINK_UNDECODABLE_MAX_RATIO") or base.sink_undecodable_max_ratio
            ),
            commit_resolve_after_s=float(
                get("COMMIT_RESOLVE_AFTER_S") or base.commit_resolve_after_s
            ),
            worker_stall_s=float(get("WORKER_STALL_S") or base.worker_stall_s),
            session_timeout_s=float(get("SESSION_TIMEOUT_S") or base.session_timeout_s),
            heartbeat_interval_s=float(get("HEARTBEAT_INTERVAL_S") or base.heartbeat_interval_s),
            metrics_port=parse_port(get("METRICS_PORT"), base.metrics_port),
            metrics_host=get("METRICS_HOST") or base.metrics_host,
            log_format=(get("LOG_FORMAT") or base.log_format).lower(),
            run_dir=Path(run_dir) if (run_dir := get("RUN_DIR")) else None,
            control_plane=Path(cp) if (cp := get("CONTROL_PLANE")) else None,
            recompute_interval_s=float(get("RECOMPUTE_INTERVAL_S") or base.recompute_interval_s),
            rule_end_grace_s=float(get("RULE_END_GRACE_S") or base.rule_end_grace_s),
            rule_idle_s=float(get("RULE_IDLE_S") or base.rule_idle_s),
            rule_forget_s=float(get("RULE_FORGET_S") or base.rule_forget_s),
            rule_max_events=int(get("RULE_MAX_EVENTS") or base.rule_max_events),
            kafka_security_protocol=get("KAFKA_SECURITY_PROTOCOL"),
            kafka_sasl_mechanism=get("KAFKA_SASL_MECHANISM"),
            kafka_sasl_username=get("KAFKA_SASL_USERNAME"),
            kafka_sasl_password=get("KAFKA_SASL_PASSWORD"),
            kafka_ssl_ca_location=get("KAFKA_SSL_CA_LOCATION"),
        )

    def to_env(self) -> dict[str, str]:
        """The environment a child process needs to rebuild these settings."""
        env = {
            "DATA_DIR": str(self.data_dir),
            "TOPIC_PREFIX": self.topic_prefix,
            "PARTITIONS": str(self.partitions),
            "REPLICATION_FACTOR": str(self.replication_factor),
            "MAX_MESSAGE_BYTES": str(self.max_message_bytes),
            "APP_ID": self.app_id,
            "SINK_GROUP": self.sink_group,
            "DATABASE": self.database,
            "LOG_LEVEL": self.log_level,
            "DEDUPE_WINDOW_S": str(self.dedupe_window_s),
            "JOIN_GRACE_S": str(self.join_grace_s),
            "TRAJECTORY_IDLE_TIMEOUT_S": str(self.trajectory_idle_timeout_s),
            "TRAJECTORY_RETENTION_S": str(self.trajectory_retention_s),
            "JOIN_SWEEP_INTERVAL_S": str(self.join_sweep_interval_s),
            "STORE": self.store,
            "DLQ_MAX_RATIO": str(self.dlq_max_ratio),
            "QUARANTINE_S": str(self.quarantine_s),
            "SINK_MAX_REJECTED": str(self.sink_max_rejected),
            "SINK_REJECT_MAX_RATIO": str(self.sink_reject_max_ratio),
            "SINK_UNDECODABLE_MAX_RATIO": str(self.sink_undecodable_max_ratio),
            "COMMIT_RESOLVE_AFTER_S": str(self.commit_resolve_after_s),
            "WORKER_STALL_S": str(self.worker_stall_s),
            "SESSION_TIMEOUT_S": str(self.session_timeout_s),
            "HEARTBEAT_INTERVAL_S": str(self.heartbeat_interval_s),
            "METRICS_PORT": "off" if self.metrics_port is None else str(self.metrics_port),
            "METRICS_HOST": self.metrics_host,
            "LOG_FORMAT": self.log_format,
            "RECOMPUTE_INTERVAL_S": str(self.recompute_interval_s),
            "RULE_END_GRACE_S": str(self.rule_end_grace_s),
            "RULE_IDLE_S": str(self.rule_idle_s),
            "RULE_FORGET_S": str(self.rule_forget_s),
            "RULE_MAX_EVENTS": str(self.rule_max_events),
        }
        if self.run_dir is not None:
            env["RUN_DIR"] = str(self.run_dir)
        if self.control_plane:
            env["CONTROL_PLANE"] = str(self.control_plane)
        if self.kafka_bootstrap:
            env["KAFKA_BOOTSTRAP"] = self.kafka_bootstrap
        if self.clickhouse_url:
            env["CLICKHOUSE_URL"] = self.clickhouse_url
        for name in _ACCESS_FIELDS:
            value = getattr(self, name)
            if value is not None:
                env[name.upper()] = value
        return {ENV_PREFIX + k: v for k, v in env.items()}


def parse_port(value: str | None, default: int | None) -> int | None:
    """``METERLINE_METRICS_PORT``: unset -> ``default``; ``off`` -> None; else a port number."""
    if value is None:
        return default
    if value.strip().lower() in ("off", "none", "false", "-1"):
        return None
    port = int(value)
    if not 0 <= port <= 65_535:
        raise ValueError(f"METERLINE_METRICS_PORT must be 0-65535 or 'off', got {value!r}")
    return port


_ACCESS_FIELDS = (
    "kafka_security_protocol",
    "kafka_sasl_mechanism",
    "kafka_sasl_username",
    "kafka_sasl_password",
    "kafka_ssl_ca_location",
)


def redact_password(url: str) -> str:
    """``url`` with the password of its user part replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")).geturl()

"""The Faust worker around the chain: the app, its topics and tables, the agent, the timers
and the recovery hooks. The chain itself (:mod:`meterline.stream_processors.pipeline`) knows
nothing of Faust.

Everything comes from a :class:`~meterline.stream_processors.config.ProcessorConfig`; the
process entry (environment, endpoints, logs, GC) is the shell's
(:mod:`meterline.ops.processor`), which also creates the table changelog topics before the
worker is built (:func:`build_pipeline` reads their size limits from the broker). Several
workers with the same ``app_id`` form one consumer group and share the partitions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import faust
from mode import CrashingSupervisor

from meterline.stream_processors.config import ProcessorConfig
from meterline.stream_processors.faust_layer import end_offsets
from meterline.stream_processors.faust_layer.output import BatchOutput
from meterline.stream_processors.metrics import ProcessorMetrics
from meterline.stream_processors.pipeline import (
    BATCH_MAX,
    BATCH_WITHIN_S,
    BatchProcessor,
    Outputs,
    steps_of,
)
from meterline.stream_processors.pricing import PricingStep
from meterline.stream_processors.rules.stage import RuleStage
from meterline.stream_processors.sizes import (
    KAFKA_DEFAULT_MAX_MESSAGE_BYTES,
    StateBounds,
    TopicLimits,
    read_limits,
)
from meterline.stream_processors.state.changelog import Changelog
from meterline.stream_processors.state.dedupe import PersistentDedupe
from meterline.stream_processors.state.writeback import PartitionPinned, WriteBack
from meterline.stream_processors.steps.dedupe import DedupeWindow
from meterline.stream_processors.steps.join import TrajectoryJoiner
from meterline.stream_processors.steps.quarantine import ProjectGuard

log = logging.getLogger(__name__)


def faust_credentials(access: Mapping[str, str]) -> Any:
    """librdkafka access settings (``ProcessorConfig.kafka_access``) as Faust/aiokafka takes
    them: ``faust.SASLCredentials``, ``faust.SSLCredentials`` or None (PLAINTEXT)."""
    protocol = access.get("security.protocol", "PLAINTEXT")
    if protocol == "PLAINTEXT":
        return None
    import ssl

    context = None
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=access.get("ssl.ca.location"))
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    return faust.SASLCredentials(
        username=access.get("sasl.username"),
        password=access.get("sasl.password"),
        mechanism=access.get("sasl.mechanism", "PLAIN"),
        ssl_context=context,
    )


def create_app(
    config: ProcessorConfig, *, logging_config: dict[str, Any] | None = None
) -> faust.App:
    """The Faust app of ``config`` (configuration only). ``logging_config``: Faust's worker
    logging (dictConfig; None keeps Faust's own text logs)."""
    if not config.kafka_bootstrap:
        raise ValueError("kafka_bootstrap is required to build the processor app")
    config.data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        config.app_id,
        broker=f"kafka://{config.kafka_bootstrap}",
        broker_credentials=faust_credentials(config.kafka_access),  # None = PLAINTEXT
        store=config.store,
        datadir=str(config.data_dir),
        topic_partitions=config.partitions,
        # the table changelogs as meterline's topics (the shell creates them first)
        topic_replication_factor=config.replication_factor,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=config.session_timeout_s,
        broker_heartbeat_interval=config.heartbeat_interval_s,
        producer_acks=-1,
        # batch the produce requests: with Faust's default linger of 0 every enriched event
        # became its own request and the worker spent its time in socket writes
        producer_linger_ms=20,
        producer_max_batch_size=1_048_576,
        producer_compression_type="lz4",
        # fairness across partitions: Faust round-robins partitions only within one fetch
        # result and queues up to stream_buffer_maxsize messages ahead of the agent, so with
        # its defaults (all fetched records, 4,096) a burst on one partition was processed
        # whole before events of other partitions that arrived meanwhile. Small fetch results
        # and a short queue interleave them (tests/integration/test_hot_key.py); an SDK batch
        # message carries many records, so batches stay large.
        broker_max_poll_records=500,
        stream_buffer_maxsize=1_000,
        web_enabled=False,
        # Faust aborts recovery when a changelog offset it already applied (from a standby
        # replica) is above the highwater the broker reports, and Tansu reports highwaters
        # that lag behind records it has already served. The state is not inconsistent (it
        # was read from that very changelog), so the check is off (recovery itself reads to
        # the true end: end_offsets below).
        recovery_consistency_check=False,
        autodiscover=False,
        logging_config=logging_config,
    )
    # table recovery reads each changelog to its true end, not to the end Tansu reports
    end_offsets.install(
        app, config.client_config(), resolve_after_s=config.commit_resolve_after_s
    )
    return app


def topic_limits(config: ProcessorConfig) -> TopicLimits:
    """The size limit (``max.message.bytes``) of every topic the worker writes to, as the
    broker reports it; Kafka's default for a topic it reports none for."""
    from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

    admin = AdminClient(config.client_config())
    names = [*config.topics.sink_inputs, *config.changelog_topics]
    limits = read_limits(admin, names, KAFKA_DEFAULT_MAX_MESSAGE_BYTES)
    log.info("topic size limits (max.message.bytes): %s", limits.limits)
    return limits


def control_plane_watcher(config: ProcessorConfig) -> Any:
    """The hot-reloaded control plane the rule stage and the price book read (None: no
    file configured). A broken file stops the worker at start; a broken new version is
    rejected and the old one keeps running."""
    from meterline.stream_processors.control_plane import ControlPlaneWatcher

    if config.control_plane is None:
        return None
    watcher = ControlPlaneWatcher(config.control_plane)
    watcher.start()  # polls the file every 2 s
    return watcher


def pricing_step(watcher: Any) -> PricingStep:
    """The pricing step on the watcher's control plane (None: the catalog alone)."""
    step = PricingStep((lambda: watcher.current) if watcher is not None else None)
    log.info("price book %s", step.book.version)
    return step


def rule_stage(
    config: ProcessorConfig, watcher: Any, state: PartitionPinned, trajectories: Any, *,
    max_state_bytes: int,
) -> RuleStage:  # fmt: skip
    """The rule stage on the hot-reloaded control plane."""
    log.info(
        "rule stage on control plane %s version %s", config.control_plane,
        watcher.current.version,
    )  # fmt: skip
    return RuleStage(
        lambda: watcher.current, state, trajectories=trajectories,
        max_events_per_trace=config.rule_max_events, end_grace_s=config.rule_end_grace_s,
        idle_s=config.rule_idle_s, forget_s=config.rule_forget_s,
        max_state_bytes=max_state_bytes,
    )  # fmt: skip


def _owned(app: faust.App, config: ProcessorConfig) -> set[int]:
    """The raw partitions this worker owns now."""
    raw = set(config.topics.raw)
    return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic in raw}


def build_pipeline(
    app: faust.App, config: ProcessorConfig, metrics: ProcessorMetrics | None = None
) -> BatchProcessor:
    """Declare tables, timers, recovery hooks and the agent on ``app``; return the processor
    (for stats). ``metrics``: counters registered in the worker's registry (None: not
    exported). The table changelog topics should exist (the shell creates them): their size
    limits bound the state."""
    assert config.kafka_bootstrap
    limits = topic_limits(config)
    # every state record within the smallest limit of the topics state is written to
    bounds = StateBounds.within(
        limits.smallest([*config.changelog_topics, config.topics.trajectory_state])
    )
    topics = config.topics
    out = BatchOutput(config.kafka_bootstrap, dict(config.kafka_access), limits=limits)
    outputs = Outputs(
        producer=out,
        enriched=topics.enriched,
        trajectory_state=topics.trajectory_state,
        dead_letters=topics.dead_letters,
        outcomes=topics.outcomes,
        outcome_corrections=topics.outcome_corrections,
    )
    # as the shell created the changelogs
    changelog_extra = {"max.message.bytes": str(config.max_message_bytes)}

    def table(name: str, **kw: Any) -> faust.types.TableT[Any, Any]:
        return app.Table(
            name, partitions=config.partitions, key_type=str,
            extra_topic_configs=changelog_extra, **kw,
        )  # fmt: skip

    seen = table("dedupe-window", value_type=bytes)
    window = DedupeWindow(window_s=config.dedupe_window_s)
    dedupe = PersistentDedupe(
        seen, window, Changelog(seen, out), max_digests=bounds.dedupe_digests
    )
    trajectory_table = table("trajectories")
    trajectories = WriteBack(trajectory_table, Changelog(trajectory_table, out))
    pending_table = table("pending-events")
    parked = WriteBack(pending_table, Changelog(pending_table, out))
    joiner = TrajectoryJoiner(
        trajectories,
        parked,
        grace_s=config.join_grace_s,
        idle_timeout_s=config.trajectory_idle_timeout_s,
        retention_s=config.trajectory_retention_s,
        bounds=bounds,
    )
    buffers = [trajectories, parked]
    rules = None
    watcher = control_plane_watcher(config)
    if watcher is not None:
        rule_table = table("rule-state")
        rule_state = WriteBack(rule_table, Changelog(rule_table, out))
        buffers.append(rule_state)
        pinned = PartitionPinned(rule_state, owned=lambda: _owned(app, config))
        rules = rule_stage(
            config, watcher, pinned, joiner.trajectory_for, max_state_bytes=bounds.rule_bytes
        )
    processor = BatchProcessor(
        outputs, dedupe, joiner, app.producer.flush,
        ProjectGuard(config.dlq_max_ratio, config.quarantine_s), buffers=buffers,
        rules=rules, pricing=pricing_step(watcher),
    )  # fmt: skip
    processor.metrics = metrics or ProcessorMetrics()
    _add_timers(app, config, processor)
    _add_recovery_hooks(seen, pending_table, processor)
    _add_agent(app, config, processor)
    return processor


def _add_timers(app: faust.App, config: ProcessorConfig, processor: BatchProcessor) -> None:
    """The join timers: grace sweeps every ``join_sweep_interval_s``, idle closes about
    every minute (at most as often as the idle timeout allows)."""
    idle_every = max(1, int(config.trajectory_idle_timeout_s // 60) or 1)
    ticks = 0

    @app.timer(interval=config.join_sweep_interval_s)  # type: ignore[untyped-decorator]
    async def _sweep_join_state() -> None:
        nonlocal ticks
        ticks += 1
        owned = _owned(app, config)
        if owned:
            await processor.sweep(owned, idle=ticks % idle_every == 0)


def _add_recovery_hooks(
    seen: faust.types.TableT[Any, Any], pending_table: faust.types.TableT[Any, Any],
    processor: BatchProcessor,
) -> None:  # fmt: skip
    """After every recovery (restart, rebalance): rebuild the dedupe window and the join
    timers from the recovered tables."""

    @seen.on_recover
    async def _rebuild_dedupe_window() -> None:
        loaded = processor.dedupe.rebuild()
        log.info("dedupe window rebuilt: %d events remembered", loaded)

    @pending_table.on_recover
    async def _recover_join_timers() -> None:
        async with processor.lock:  # batches and sweeps use what this rebuilds
            traces = processor.joiner.recover()
        log.info("join state recovered: %d traces with parked events", traces)


def _add_agent(app: faust.App, config: ProcessorConfig, processor: BatchProcessor) -> None:
    """The one agent over the raw topics. Its takes are processed in steps
    (:func:`~meterline.stream_processors.pipeline.steps_of`); Faust acknowledges a take once
    the agent moves on, which is the chain's commit. An agent crash (e.g. undeliverable
    output) stops the worker: its partitions replay from the last commit on the next owner
    instead of continuing past a gap."""
    source = app.topic(
        *config.topics.raw,
        key_type=bytes,
        value_type=bytes,
        # "raw" serializers: Faust must hand over the bytes untouched. With its default
        # JSON value serializer, one non-JSON record stalls the whole stream unacked.
        key_serializer="raw",
        value_serializer="raw",
        partitions=config.partitions,
    )

    @app.agent(source, name="meterline-process", supervisor_strategy=CrashingSupervisor)
    async def process(stream: Any) -> None:  # faust.Stream: take_events is not on StreamT
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            # each step flushes and marks its own events; Faust acks the take after all
            try:
                for batch in steps_of(list(events)):
                    with processor.metrics.batch(len(batch)):
                        await processor.process(batch)
            except BaseException as exc:  # Faust acks the whole take anyway: commit no more
                freeze = getattr(app.consumer, "freeze_commits", None)
                if freeze is not None:
                    freeze(f"the agent stopped mid-take ({type(exc).__name__}: {exc})")
                raise

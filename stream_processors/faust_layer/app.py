"""The Faust application: configuration only. The chain itself is in :mod:`pipeline`."""

from __future__ import annotations

import faust

from meterline.ops.logs import faust_logging_config
from meterline.settings import Settings
from meterline.stream_processors.faust_layer import end_offsets


def create_app(settings: Settings, *, store: str = "memory://") -> faust.App:
    """A Faust app for ``settings``. ``store`` is the table store (``rocksdb://`` in production)."""
    if not settings.kafka_bootstrap:
        raise ValueError("kafka_bootstrap is required to build the processor app")
    settings.faust_datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        broker_credentials=settings.faust_credentials(),  # TLS / SASL, None = PLAINTEXT
        store=store,
        datadir=str(settings.faust_datadir),
        topic_partitions=settings.partitions,
        # the table changelogs as meterline's topics (admin.ensure_topics creates them first)
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
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
        # replica) is above the highwater the broker reports. Tansu reports highwaters that
        # lag behind records it has already served (seen: 680 > 669 during a rebalance),
        # which crashed every worker on rebalance. The state is not inconsistent (it was read
        # from that very changelog), so the check is off (recovery itself reads to the true
        # end: end_offsets below).
        recovery_consistency_check=False,
        autodiscover=False,
        logging_config=faust_logging_config(settings),  # METERLINE_LOG_FORMAT=json
    )
    # table recovery reads each changelog to its true end, not to the end Tansu reports
    end_offsets.install(
        app,
        {"bootstrap.servers": settings.kafka_bootstrap, **settings.kafka_client_config()},
        resolve_after_s=settings.commit_resolve_after_s,
    )
    return app

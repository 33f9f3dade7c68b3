"""A stream-processor worker process: ``python -m meterline.ops.processor`` (``meterline
worker``; ``meterline up`` spawns these).

Reads :class:`~meterline.settings.Settings` from ``METERLINE_*`` environment variables, creates
the worker's table changelog topics, and runs the worker
(:mod:`meterline.stream_processors.worker`) on ``Settings.processor_config()`` with the shell's
GC tuning, JSON logs and endpoints. Metrics and health are served on
``METERLINE_METRICS_PORT`` (see :mod:`meterline.ops.monitoring`).
"""

from __future__ import annotations

import atexit
import gc
import sys

from meterline.ops.admin import changelog_config, ensure_topics
from meterline.ops.endpoints import new_registry
from meterline.ops.gc_tuning import tune_gc
from meterline.ops.logs import faust_logging_config
from meterline.ops.monitoring import worker_endpoints, worker_stall_watch
from meterline.settings import Settings
from meterline.stream_processors.config import ProcessorConfig
from meterline.stream_processors.metrics import ProcessorMetrics
from meterline.stream_processors.worker import build_pipeline, create_app


def create_changelogs(config: ProcessorConfig) -> None:
    """The worker's table changelog topics, before Faust starts: ``max.message.bytes`` and
    replication factor as meterline's topics (a broker's default is ~1 MB), compacted."""
    assert config.kafka_bootstrap
    ensure_topics(
        config.kafka_bootstrap, config.changelog_topics, config.partitions,
        replication_factor=config.replication_factor, config=config.kafka_access,
        topic_configs=changelog_config(config.max_message_bytes),
    )  # fmt: skip


def main() -> None:
    tune_gc()
    settings = Settings.from_env()
    config = settings.processor_config()
    app = create_app(config, logging_config=faust_logging_config(settings))
    create_changelogs(config)
    registry = new_registry("processor")
    processor = build_pipeline(app, config, ProcessorMetrics(registry))
    watched = worker_stall_watch(app, settings, processor)
    server = worker_endpoints(app, settings, registry, processor, watched and watched[0])
    if server is not None:
        atexit.register(server.stop)
    # JSON logs: no banner on stdout (--quiet), so every line of the log is one JSON object
    quiet = ["--quiet"] if settings.log_format == "json" else []
    sys.argv = [sys.argv[0], *quiet, "worker", "--loglevel", settings.log_level, "--without-web"]
    gc.freeze()  # what start-up built (modules, app, tables) is never scanned again
    app.main()


if __name__ == "__main__":
    main()

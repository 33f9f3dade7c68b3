"""Entry point of a stream-processor worker process: ``python -m
meterline.stream_processors.worker``.

Reads :class:`Settings` from ``METERLINE_*`` environment variables. Several workers with the
same ``METERLINE_APP_ID`` form one consumer group and share the partitions. Metrics and
health are served on ``METERLINE_METRICS_PORT`` (see :mod:`meterline.ops.monitoring`).
"""

from __future__ import annotations

import atexit
import gc
import sys

from meterline.ops.endpoints import new_registry
from meterline.ops.gc_tuning import tune_gc
from meterline.ops.monitoring import worker_endpoints, worker_stall_watch
from meterline.settings import Settings
from meterline.stream_processors.faust_layer.app import create_app
from meterline.stream_processors.metrics import ProcessorMetrics
from meterline.stream_processors.pipeline import build_pipeline


def main() -> None:
    tune_gc()
    settings = Settings.from_env()
    app = create_app(settings, store=settings.store)
    registry = new_registry("processor")
    processor = build_pipeline(app, settings, ProcessorMetrics(registry))
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

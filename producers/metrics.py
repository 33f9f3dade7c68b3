"""SDK counters for Prometheus, in the agent process. Optional: needs ``prometheus-client``.

The counters themselves need nothing: ``client.stats.snapshot()`` (``MeterlineClient``) is
always there. :func:`register` exports them from an existing Prometheus registry, read at
scrape time (no cost on the recording path)::

    from meterline.producers.metrics import register
    register()                      # the process-wide client, prometheus_client's REGISTRY

Series: ``meterline_sdk_records_total{outcome=...}`` for each counter of
:class:`meterline.producers.SdkStats` (processed, dropped, build_errors, oversized, truncated, sent,
send_errors, delivered, failed) and the gauge ``meterline_sdk_queue_depth``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from meterline.producers.sdk import MeterlineClient


def register(
    client: MeterlineClient | Callable[[], MeterlineClient] | None = None,
    registry: Any = None,
) -> Any:
    """Register a collector for ``client`` (default: the process-wide client, looked up at
    each scrape) in ``registry`` (default: ``prometheus_client.REGISTRY``); return it.

    Raises:
        ImportError: prometheus-client is not installed (``pip install prometheus-client``).
    """
    try:
        from prometheus_client import REGISTRY
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    except ImportError as exc:
        raise ImportError(
            "meterline.producers.metrics needs prometheus-client: pip install 'meterline[metrics]' "
            "(the counters are in client.stats.snapshot() without it)"
        ) from exc
    if client is None:
        from meterline.producers.config import get_client

        source: Callable[[], MeterlineClient] = get_client
    elif isinstance(client, MeterlineClient):
        source = lambda: client  # noqa: E731
    else:
        source = client

    class SdkCollector:
        def collect(self) -> Iterable[Any]:
            c = source()
            records = CounterMetricFamily(
                "meterline_sdk_records", "SDK record counters", labels=["outcome"]
            )
            for outcome, value in c.stats.snapshot().items():
                records.add_metric([outcome], value)
            yield records
            yield GaugeMetricFamily(
                "meterline_sdk_queue_depth", "records waiting in the SDK queue", c.queue_depth
            )

    collector = SdkCollector()
    (REGISTRY if registry is None else registry).register(collector)
    return collector

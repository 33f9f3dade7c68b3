"""The ingestion gateway: an authenticated HTTP edge in front of the raw topics.

``POST /v1/events`` (JSON array or NDJSON of wire records) and ``POST /v1/traces`` (OTLP/HTTP,
GenAI spans) become raw records produced exactly as the SDK produces them
(:class:`meterline.producers.MeterlineProducer`: key trace_id else event_id, murmur2 partitioner,
NDJSON framing). The API key decides the project, never the record. See docs/gateway.md.

Needs the ``gateway`` extra (``pip install 'meterline[gateway]'``).
"""

from __future__ import annotations

try:
    import aiohttp  # noqa: F401
    import google.protobuf  # noqa: F401
    import opentelemetry.proto  # noqa: F401
    import prometheus_client  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        f"the meterline gateway needs its extra: pip install 'meterline[gateway]' ({exc})"
    ) from exc

from meterline.producers.gateway.config import GatewayConfig
from meterline.producers.gateway.keys import ApiKey, KeyStore
from meterline.producers.gateway.server import GatewayServer

__all__ = ["ApiKey", "GatewayConfig", "GatewayServer", "KeyStore"]

"""meterline producers: the SDK agents use to publish events to Kafka, or over HTTP to the
ingestion gateway (:mod:`meterline.producers.http`).

Importable with only ``confluent-kafka`` and ``pydantic`` installed (the minimal install).

Five tracking APIs, one wire format (``schemas``), one non-blocking client:

- :mod:`meterline.producers.valmi`: ``action`` context manager, ``send_outcome``
- :mod:`meterline.producers.agentsight`: ``AgentSightTracker.track_action``
- :mod:`meterline.producers.tracer`: ``ActionTracer``, ``TraceEntry``, ``JSONLExporter``,
  ``MeterlinePublisher``
- :mod:`meterline.producers.telemetry`: ``TelemetryEvent`` (SDK dataclass), ``push_events``,
  ``TraceContext``, ``upload_trace``
- :mod:`meterline.producers.agentops`: ``ActionEvent`` / ``LLMEvent`` / ``ToolEvent`` /
``ErrorEvent``
  (SDK dataclasses), ``record``, ``record_action``, ``record_tool``

The SDK classes that share a name with a wire model (``TelemetryEvent``, ``ActionEvent``) are
exported from their modules only: ``meterline.producers.telemetry.TelemetryEvent``,
``meterline.producers.agentops.ActionEvent`` (the SDK classes) or
``meterline.schemas.TelemetryEvent`` /
``meterline.schemas.ActionEvent`` (the wire records). ``from producers import ActionEvent`` raises
an
ImportError that names them.

Never breaks the agent: no tracking API raises because of metering (see
:mod:`meterline.producers.safety`);
``init(strict=True)`` or ``METERLINE_STRICT=1`` makes them raise.
"""

from meterline.producers.agentops import ErrorEvent, LLMEvent, ToolEvent, record_action, record_tool
from meterline.producers.agentsight import AgentSightTracker, load_display_names, track_action
from meterline.producers.batching import BatchConfig
from meterline.producers.client import DEFAULT_CONFIG, DeliveryStats, MeterlineProducer
from meterline.producers.config import flush, get_client, init, set_client, shutdown
from meterline.producers.errors import (
    DeliveryFailed,
    NotConfigured,
    ProducerError,
    QueueFull,
    RecordTooLarge,
)
from meterline.producers.http import HttpConfig, HttpSink
from meterline.producers.limits import DEFAULT_LIMITS, Limits
from meterline.producers.redact import DEFAULT_REDACTOR, REDACTED, Redactor
from meterline.producers.sdk import MeterlineClient, SdkStats, Sink, stable_id
from meterline.producers.telemetry import PushResult, TraceContext, push_events, upload_trace
from meterline.producers.tracer import ActionTracer, JSONLExporter, MeterlinePublisher, TraceEntry
from meterline.producers.unconfigured import UnconfiguredClient
from meterline.producers.valmi import Action, action, send_outcome

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_LIMITS",
    "DEFAULT_REDACTOR",
    "REDACTED",
    "Action",
    "ActionTracer",
    "AgentSightTracker",
    "BatchConfig",
    "DeliveryFailed",
    "DeliveryStats",
    "ErrorEvent",
    "HttpConfig",
    "HttpSink",
    "JSONLExporter",
    "LLMEvent",
    "Limits",
    "MeterlineClient",
    "MeterlineProducer",
    "MeterlinePublisher",
    "NotConfigured",
    "ProducerError",
    "PushResult",
    "QueueFull",
    "RecordTooLarge",
    "Redactor",
    "SdkStats",
    "Sink",
    "ToolEvent",
    "TraceContext",
    "TraceEntry",
    "UnconfiguredClient",
    "action",
    "flush",
    "get_client",
    "init",
    "load_display_names",
    "push_events",
    "record_action",
    "record_tool",
    "send_outcome",
    "set_client",
    "shutdown",
    "stable_id",
    "track_action",
    "upload_trace",
]

_AMBIGUOUS = {
    "ActionEvent": "meterline.producers.agentops.ActionEvent (the AgentOps SDK event) or "
                   "meterline.schemas.ActionEvent (the wire record)",
    "TelemetryEvent": "meterline.producers.telemetry.TelemetryEvent (the SDK dataclass) or "
                      "meterline.schemas.TelemetryEvent (the wire record)",
}


def __getattr__(name: str) -> object:
    if name in _AMBIGUOUS:
        raise ImportError(f"meterline.{name} is ambiguous: import {_AMBIGUOUS[name]}")
    raise AttributeError(f"module 'meterline' has no attribute {name!r}")

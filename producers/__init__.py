"""meterline producers: the SDK agents use to publish events to Kafka.

Importable with only ``confluent-kafka`` and ``pydantic`` installed (the minimal install).

Five tracking APIs, one wire format (``schemas``), one non-blocking client:

- :mod:`producers.valmi`: ``action`` context manager, ``send_outcome``
- :mod:`producers.agentsight`: ``AgentSightTracker.track_action``
- :mod:`producers.tracer`: ``ActionTracer``, ``TraceEntry``, ``JSONLExporter``,
  ``MeterlinePublisher``
- :mod:`producers.telemetry`: ``TelemetryEvent`` (SDK dataclass), ``push_events``,
  ``TraceContext``, ``upload_trace``
- :mod:`producers.agentops`: ``ActionEvent`` / ``LLMEvent`` / ``ToolEvent`` / ``ErrorEvent``
  (SDK dataclasses), ``record``, ``record_action``, ``record_tool``

The SDK classes that share a name with a wire model (``TelemetryEvent``, ``ActionEvent``) are
exported from their modules only: ``producers.telemetry.TelemetryEvent``,
``producers.agentops.ActionEvent`` (the SDK classes) or ``schemas.TelemetryEvent`` /
``schemas.ActionEvent`` (the wire records). ``from producers import ActionEvent`` raises an
ImportError that names them.

Never breaks the agent: no tracking API raises because of metering (see
:mod:`producers.safety`); ``init(strict=True)`` or ``METERLINE_STRICT=1`` makes them raise.
"""

from producers.agentops import ErrorEvent, LLMEvent, ToolEvent, record_action, record_tool
from producers.agentsight import AgentSightTracker, load_display_names, track_action
from producers.batching import BatchConfig
from producers.client import DEFAULT_CONFIG, DeliveryStats, MeterlineProducer
from producers.config import flush, get_client, init, set_client, shutdown
from producers.errors import (
    DeliveryFailed,
    NotConfigured,
    ProducerError,
    QueueFull,
    RecordTooLarge,
)
from producers.limits import DEFAULT_LIMITS, Limits
from producers.redact import DEFAULT_REDACTOR, REDACTED, Redactor
from producers.sdk import MeterlineClient, SdkStats, Sink, UnconfiguredClient, stable_id
from producers.telemetry import PushResult, TraceContext, push_events, upload_trace
from producers.tracer import ActionTracer, JSONLExporter, MeterlinePublisher, TraceEntry
from producers.valmi import Action, action, send_outcome

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
    "ActionEvent": "producers.agentops.ActionEvent (the AgentOps SDK event) or "
                   "schemas.ActionEvent (the wire record)",
    "TelemetryEvent": "producers.telemetry.TelemetryEvent (the SDK dataclass) or "
                      "schemas.TelemetryEvent (the wire record)",
}


def __getattr__(name: str) -> object:
    if name in _AMBIGUOUS:
        raise ImportError(f"producers.{name} is ambiguous: import {_AMBIGUOUS[name]}")
    raise AttributeError(f"module 'producers' has no attribute {name!r}")

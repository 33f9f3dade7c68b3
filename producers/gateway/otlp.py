"""OTLP/HTTP traces -> meterline raw records, by the OpenTelemetry GenAI semantic conventions.

Decoding is ``opentelemetry-proto``'s (protobuf, or its JSON mapping with hex ids). The
mapping (docs/gateway.md has the table):

- ``gen_ai.operation.name`` chat / text_completion / generate_content / embeddings ->
  an ``llm_call`` action; ``execute_tool`` -> a ``tool_call`` action;
- ``invoke_agent`` / ``create_agent`` with no agent span above it in the same export ->
  the trajectory (``trace_id`` = the OTel trace id);
- every other span is counted and ignored.

``event_id`` is ``otel-<trace id>-<span id>`` (hex), so a retried export produces the same
ids and the processor's dedupe keeps one. Where the conventions renamed an attribute, the
current name wins over the previous one.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from meterline.producers.gateway.errors import BadRequest

LLM_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings"})
AGENT_OPERATIONS = frozenset({"invoke_agent", "create_agent"})

#: (current name, previous names...): the first one present wins
MODEL = ("gen_ai.response.model", "gen_ai.request.model")
PROVIDER = ("gen_ai.provider.name", "gen_ai.system")
INPUT_TOKENS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
OUTPUT_TOKENS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
CACHE_READ = ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens")
CACHE_WRITE = (
    "gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_creation_input_tokens",
)  # fmt: skip
USER = ("user.id", "enduser.id")
SESSION = ("gen_ai.conversation.id", "session.id")
AGENT_ID = ("gen_ai.agent.id", "gen_ai.agent.name")
TOOL_NAME = ("gen_ai.tool.name",)
ERROR_TYPE = ("error.type",)


@dataclass
class Mapped:
    """What one export request became."""

    records: list[dict[str, Any]] = field(default_factory=list)
    spans: int = 0
    ignored: int = 0


def decode(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    """An export request from protobuf or OTLP JSON (hex trace and span ids)."""
    msg = ExportTraceServiceRequest()
    try:
        if content_type == "application/x-protobuf":
            msg.ParseFromString(body)
        else:
            json_format.ParseDict(_hex_ids_to_base64(_json(body)), msg, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError) as exc:
        raise BadRequest(f"not an OTLP ExportTraceServiceRequest: {exc}") from None
    except Exception as exc:  # protobuf's DecodeError
        raise BadRequest(f"not an OTLP ExportTraceServiceRequest: {exc}") from None
    return msg


def response(rejected: int, message: str, content_type: str) -> bytes:
    out = ExportTraceServiceResponse()
    if rejected or message:
        out.partial_success.rejected_spans = rejected
        out.partial_success.error_message = message
    if content_type == "application/x-protobuf":
        return bytes(out.SerializeToString())
    return str(json_format.MessageToJson(out, indent=None)).encode()


def map_request(req: ExportTraceServiceRequest) -> Mapped:
    """Map every span; an event without user or session takes its trace's agent span's
    (``user.id`` and ``gen_ai.conversation.id`` usually sit on the agent span only)."""
    out = Mapped()
    inherited: dict[str, dict[str, Any]] = {}
    for rs in req.resource_spans:
        resource = _attrs(rs.resource.attributes)
        spans = [(s, {**resource, **_attrs(s.attributes)}) for ss in rs.scope_spans
                 for s in ss.spans]  # fmt: skip
        agent_ids = {s.span_id for s, a in spans
                     if a.get("gen_ai.operation.name") in AGENT_OPERATIONS}  # fmt: skip
        for span, attrs in spans:
            out.spans += 1
            record = map_span(span, attrs, agent_ids)
            if record is None:
                out.ignored += 1
                continue
            out.records.append(record)
            if record["type"] == "trajectory":
                who = inherited.setdefault(record["trace_id"], {})
                if "user_id" in record:
                    who["user_id"] = record["user_id"]
                if session := record["metadata"].get("session_id"):
                    who["session_id"] = str(session)
    for record in out.records:
        if record["type"] == "action":
            for name, value in inherited.get(record["trace_id"], {}).items():
                record.setdefault(name, value)
    return out


def map_span(span: Span, attrs: dict[str, Any], agent_spans: set[bytes]) -> dict[str, Any] | None:
    op = attrs.get("gen_ai.operation.name")
    if op in LLM_OPERATIONS or op == "execute_tool":
        return _action(span, attrs, op)
    if op in AGENT_OPERATIONS and span.parent_span_id not in agent_spans:
        return _trajectory(span, attrs)
    return None


def _action(span: Span, attrs: dict[str, Any], op: str) -> dict[str, Any]:
    started, ended = _time(span.start_time_unix_nano), _time(span.end_time_unix_nano)
    error = span.status.code == Status.STATUS_CODE_ERROR
    record: dict[str, Any] = {
        "type": "action",
        "event_id": f"otel-{span.trace_id.hex()}-{span.span_id.hex()}",
        "trace_id": span.trace_id.hex(),
        "name": span.name or op,
        "status": "error" if error else "success",
        "timestamp": started,
        "started_at": started,
        "ended_at": ended,
        "duration_ms": max(0, span.end_time_unix_nano - span.start_time_unix_nano) / 1e6,
        "source": "otlp",
        "metadata": {"otel_span_id": span.span_id.hex(), "gen_ai.operation.name": op},
    }
    if op == "execute_tool":
        record["kind"] = "tool_call"
        record["name"] = _first(attrs, TOOL_NAME) or record["name"]
    else:
        record["kind"] = "llm_call"
        record["model"] = _first(attrs, MODEL)
        record["provider"] = _first(attrs, PROVIDER)
        record["input_tokens"] = _first(attrs, INPUT_TOKENS) or 0
        record["output_tokens"] = _first(attrs, OUTPUT_TOKENS) or 0
        record["cached_tokens"] = _first(attrs, CACHE_READ) or 0
        if written := _first(attrs, CACHE_WRITE):
            record["properties"] = {"cache_creation_input_tokens": written}
    if error:
        record["error_type"] = _first(attrs, ERROR_TYPE) or "error"
        record["error_message"] = span.status.message or None
    _who(record, attrs)
    if session := _first(attrs, SESSION):
        record["session_id"] = str(session)
    return record


def _trajectory(span: Span, attrs: dict[str, Any]) -> dict[str, Any]:
    error = span.status.code == Status.STATUS_CODE_ERROR
    record: dict[str, Any] = {
        "type": "trajectory",
        "trace_id": span.trace_id.hex(),
        "status": "error" if error else "success",
        "timestamp": _time(span.end_time_unix_nano or span.start_time_unix_nano),
        "started_at": _time(span.start_time_unix_nano),
        "ended_at": _time(span.end_time_unix_nano) if span.end_time_unix_nano else None,
        "metadata": {"otel_span_id": span.span_id.hex(), "source": "otlp"},
    }
    if name := attrs.get("gen_ai.agent.name"):
        record["metadata"]["agent_name"] = name
    if session := _first(attrs, SESSION):
        record["metadata"]["session_id"] = session
    _who(record, attrs)
    return record


def _who(record: dict[str, Any], attrs: dict[str, Any]) -> None:
    if user := _first(attrs, USER):
        record["user_id"] = str(user)
    if agent := _first(attrs, AGENT_ID):
        record["agent_id"] = str(agent)


def _first(attrs: dict[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        value = attrs.get(name)
        if value is not None and value != "":
            return value
    return None


def _time(unix_nano: int) -> str:
    return datetime.fromtimestamp(unix_nano / 1e9, UTC).isoformat()


def _attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in kvs}


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return v.string_value
    if kind == "int_value":
        return v.int_value
    if kind == "double_value":
        return v.double_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return _attrs(v.kvlist_value.values)
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return None


def _json(body: bytes) -> Any:
    import orjson

    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not JSON: {exc}") from None


_ID_FIELDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def _hex_ids_to_base64(doc: Any) -> Any:
    """OTLP JSON writes trace and span ids as hex; protobuf's JSON mapping reads bytes as
    base64. Converts them in place (spans and their links)."""
    if not isinstance(doc, dict):
        raise BadRequest("body must be a JSON ExportTraceServiceRequest object")
    for rs in doc.get("resourceSpans") or doc.get("resource_spans") or []:
        for ss in rs.get("scopeSpans") or rs.get("scope_spans") or []:
            for span in ss.get("spans") or []:
                _convert_ids(span)
                for link in span.get("links") or []:
                    _convert_ids(link)
    return doc


def _convert_ids(obj: dict[str, Any]) -> None:
    for name in _ID_FIELDS:
        value = obj.get(name)
        if isinstance(value, str) and value:
            try:
                obj[name] = base64.b64encode(bytes.fromhex(value)).decode()
            except ValueError:
                raise BadRequest(f"{name}: {value!r} is not a hex id") from None


__all__ = ["Mapped", "decode", "map_request", "response"]

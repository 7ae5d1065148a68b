"""OTLP/HTTP trace export requests (protobuf or JSON) -> canonical events.

Decoding and translation are separate steps: :func:`decode_request` turns either encoding into
:class:`~traceyard.ingest.otel_mapping.OtelSpan` s (ids as lowercase hex, the form every store
and UI uses), :func:`translate` turns spans into :class:`~traceyard.model.Event` s. Trace-level
fields are built from spans the way the Langfuse server does (wire notes §4.4): a root span
(no parent, or ``langfuse.internal.as_root``) gives the trace its name, input and output; any
span may add trace attributes (user, session, tags, metadata, ...); explicit attributes win
over what being the root implies.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from traceyard.ingest.otel_mapping import (
    OtelSpan,
    SpanEvent,
    bytes_value,
    make_scope,
    map_span,
)
from traceyard.model import Entity, Event, merge_fields

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
_KIND_NAMES = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
}
_MAX_REJECT_REASONS = 5


class OtlpDecodeError(ValueError):
    """The body is not an OTLP ExportTraceServiceRequest in the declared encoding (400)."""


@dataclass
class DecodedRequest:
    spans: list[OtelSpan] = field(default_factory=list)
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)

    def reject(self, reason: str) -> None:
        self.rejected += 1
        if len(self.reasons) < _MAX_REJECT_REASONS:
            self.reasons.append(reason)


def media_type(content_type: str | None) -> str:
    """``application/x-protobuf`` or ``application/json``; OTLP's default is protobuf."""
    kind = (content_type or PROTOBUF).split(";", 1)[0].strip().lower()
    if kind in ("application/x-protobuf", "application/protobuf", "application/octet-stream"):
        return PROTOBUF
    if kind == JSON or kind.endswith("+json"):
        return JSON
    raise OtlpDecodeError(
        f"unsupported Content-Type {content_type!r}: OTLP/HTTP is application/x-protobuf "
        "or application/json"
    )


def decode_request(body: bytes, content_type: str | None) -> DecodedRequest:
    kind = media_type(content_type)
    return _decode_protobuf(body) if kind == PROTOBUF else _decode_json(body)


def translate(spans: Iterable[OtelSpan], project: str) -> list[Event]:
    """Observation events for the spans, plus one merged trace event per trace touched."""
    observations: list[Event] = []
    explicit: dict[str, dict[str, Any]] = {}
    implied: dict[str, dict[str, Any]] = {}
    for span in spans:
        mapped = map_span(span)
        observations.append(
            Event(Entity.OBSERVATION, span.span_id, span.trace_id, project, mapped.observation)
        )
        merge_fields(explicit.setdefault(span.trace_id, {}), mapped.trace)
        if mapped.is_root:
            merge_fields(implied.setdefault(span.trace_id, {}), mapped.trace_implied)
    traces: list[Event] = []
    for trace_id, fields in explicit.items():
        combined = implied.get(trace_id, {})
        merge_fields(combined, fields)
        if combined:
            traces.append(Event(Entity.TRACE, trace_id, trace_id, project, combined))
    return traces + observations


def encode_response(kind: str, rejected: int, message: str) -> bytes:
    """The OTLP success body, with ``partial_success`` when spans were rejected."""
    if kind == PROTOBUF:
        response = ExportTraceServiceResponse()
        if rejected:
            response.partial_success.CopyFrom(
                ExportTracePartialSuccess(rejected_spans=rejected, error_message=message)
            )
        encoded: bytes = response.SerializeToString()
        return encoded
    body: dict[str, Any] = {}
    if rejected:
        body["partialSuccess"] = {"rejectedSpans": rejected, "errorMessage": message}
    return json.dumps(body).encode()


# ------------------------------------------------------------------------------ protobuf


def _decode_protobuf(body: bytes) -> DecodedRequest:
    try:
        request = ExportTraceServiceRequest.FromString(body)
    except DecodeError as exc:
        raise OtlpDecodeError(
            f"body is not a protobuf ExportTraceServiceRequest ({exc}); "
            "send OTLP/HTTP protobuf or set Content-Type: application/json for OTLP/JSON"
        ) from None
    decoded = DecodedRequest()
    spans = decoded.spans
    # Repeated fields are iterated as slices: iterating a upb container directly ends by
    # raising (and formatting) an IndexError, ~2 µs a span over attributes and events.
    for resource_spans in request.resource_spans[:]:
        resource = _pb_attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans[:]:
            pb_scope = scope_spans.scope
            scope = make_scope(pb_scope.name, pb_scope.version, _pb_attributes(pb_scope.attributes))
            for pb in scope_spans.spans[:]:
                trace_id = pb.trace_id.hex()
                span_id = pb.span_id.hex()
                if not _valid_id(trace_id, 32) or not _valid_id(span_id, 16):
                    decoded.reject(
                        f"span {pb.name!r}: traceId must be 16 bytes and spanId 8 bytes, "
                        "not all zero"
                    )
                    continue
                status = pb.status
                spans.append(
                    OtelSpan(
                        trace_id,
                        span_id,
                        pb.parent_span_id.hex() or None,
                        pb.name,
                        pb.kind,
                        pb.start_time_unix_nano,
                        pb.end_time_unix_nano or None,
                        _pb_attributes(pb.attributes),
                        [
                            SpanEvent(e.name, e.time_unix_nano, _pb_attributes(e.attributes))
                            for e in pb.events[:]
                        ],
                        status.code,
                        status.message,
                        resource,
                        scope,
                    )
                )
    return decoded


def _pb_attributes(attributes: Sequence[KeyValue]) -> dict[str, Any]:
    decoded: dict[str, Any] = {}
    for kv in attributes[:]:
        value = kv.value
        # Most attributes are non-empty strings: take the string before asking which field
        # is set (WhichOneof costs as much again); "" may be unset, so it goes the long way.
        text = value.string_value
        decoded[kv.key] = text if text else _pb_value(value)
    return decoded


def _pb_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "array_value":
        return [_pb_value(item) for item in value.array_value.values[:]]
    if kind == "kvlist_value":
        return _pb_attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return bytes_value(value.bytes_value)
    return None


def _valid_id(hex_id: str, length: int) -> bool:
    return len(hex_id) == length and hex_id != "0" * length


# ------------------------------------------------------------------------------ JSON


def _decode_json(body: bytes) -> DecodedRequest:
    try:
        request = orjson.loads(body)
    except ValueError as exc:
        raise OtlpDecodeError(f"body is not valid JSON: {exc}") from None
    if not isinstance(request, dict):
        raise OtlpDecodeError("OTLP/JSON body must be an object with 'resourceSpans'")
    decoded = DecodedRequest()
    for resource_spans in _list(request, "resourceSpans", "resource_spans"):
        resource = _json_attributes(_dict(resource_spans, "resource").get("attributes"))
        for scope_spans in _list(resource_spans, "scopeSpans", "scope_spans"):
            raw_scope = _dict(scope_spans, "scope")
            scope = make_scope(
                str(raw_scope.get("name") or ""),
                str(raw_scope.get("version") or ""),
                _json_attributes(raw_scope.get("attributes")),
            )
            for raw in _list(scope_spans, "spans"):
                span = _json_span(raw, resource, scope, decoded)
                if span is not None:
                    decoded.spans.append(span)
    return decoded


def _json_span(
    raw: Any, resource: dict[str, Any], scope: Any, decoded: DecodedRequest
) -> OtelSpan | None:
    if not isinstance(raw, dict):
        decoded.reject("a span is not a JSON object")
        return None
    name = str(raw.get("name") or "")
    trace_id = _json_id(raw, "traceId", "trace_id")
    span_id = _json_id(raw, "spanId", "span_id")
    if not _valid_id(trace_id, 32) or not _valid_id(span_id, 16):
        decoded.reject(
            f"span {name!r}: traceId must be 32 hex characters and spanId 16, not all zero"
        )
        return None
    parent = _json_id(raw, "parentSpanId", "parent_span_id") or None
    start = _json_int(raw.get("startTimeUnixNano", raw.get("start_time_unix_nano")))
    end = _json_int(raw.get("endTimeUnixNano", raw.get("end_time_unix_nano")))
    status = _dict(raw, "status")
    code = status.get("code", 0)
    events = [
        SpanEvent(
            str(event.get("name") or ""),
            _json_int(event.get("timeUnixNano", event.get("time_unix_nano"))) or 0,
            _json_attributes(event.get("attributes")),
        )
        for event in _list(raw, "events")
        if isinstance(event, dict)
    ]
    return OtelSpan(
        trace_id,
        span_id,
        parent,
        name,
        _enum(raw.get("kind", 0), _KIND_NAMES),
        start or 0,
        end or None,
        _json_attributes(raw.get("attributes")),
        events,
        _enum(code, _STATUS_NAMES),
        str(status.get("message") or ""),
        resource,
        scope,
    )


def _json_id(raw: dict[str, Any], camel: str, snake: str) -> str:
    """OTLP/JSON ids are hex strings (not protobuf-JSON base64)."""
    value = raw.get(camel, raw.get(snake))
    if not isinstance(value, str):
        return ""
    value = value.strip().lower()
    try:
        int(value, 16)
    except ValueError:
        return "!" if value else ""
    return value


def _json_attributes(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, list):
        return {}
    attributes: dict[str, Any] = {}
    for item in raw:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            attributes[item["key"]] = _json_value(item.get("value"))
    return attributes


def _json_value(value: Any) -> Any:
    if not isinstance(value, dict):
        return None
    for key, item in value.items():
        if key in ("stringValue", "string_value", "boolValue", "bool_value"):
            return item
        if key in ("intValue", "int_value"):
            return _json_int(item)
        if key in ("doubleValue", "double_value"):
            try:
                return float(item)
            except (TypeError, ValueError):
                return None
        if key in ("arrayValue", "array_value"):
            values = item.get("values") if isinstance(item, dict) else None
            return [_json_value(v) for v in values or []]
        if key in ("kvlistValue", "kvlist_value"):
            values = item.get("values") if isinstance(item, dict) else None
            return _json_attributes(values)
        if key in ("bytesValue", "bytes_value"):
            return item
    return None


def _json_int(value: Any) -> int | None:
    """OTLP/JSON sends 64-bit integers as strings (or numbers from lenient encoders)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _enum(value: Any, names: dict[str, int]) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        return names.get(value, _json_int(value) or 0)
    return 0


def _list(raw: Any, *keys: str) -> list[Any]:
    if not isinstance(raw, dict):
        return []
    for key in keys:
        value = raw.get(key)
        if isinstance(value, list):
            return value
    return []


def _dict(raw: Any, key: str) -> dict[str, Any]:
    value = raw.get(key) if isinstance(raw, dict) else None
    return value if isinstance(value, dict) else {}

"""Building OTLP ``ExportTraceServiceRequest`` s: ids, attribute values, resource grouping.

Shared by both attribute conventions (Langfuse, GenAI/OpenInference): they decide WHAT each
span says as a flat ``{key: value}`` dict, this module decides how it goes on the wire.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, Status

from traceyard._internal.serialize import dumps
from traceyard._version import __version__

SCOPE_NAME = "traceyard"
_INT64_MAX = (1 << 63) - 1
_HEX = frozenset("0123456789abcdef")


def trace_id_bytes(value: str) -> bytes:
    """16 bytes: the id itself when it is OTel-shaped (32 hex, or a UUID), else a hash of it,
    so the same id always maps to the same trace and references stay consistent."""
    return _id_bytes(value, 16)


def span_id_bytes(value: str) -> bytes:
    """8 bytes: the id itself when it is 16 hex characters, else a hash of it."""
    return _id_bytes(value, 8)


def _id_bytes(value: str, size: int) -> bytes:
    text = value.strip().lower()
    if size == 16 and len(text) == 36 and text.count("-") == 4:
        text = text.replace("-", "")
    if len(text) == size * 2 and set(text) <= _HEX and text.strip("0"):
        return bytes.fromhex(text)
    return hashlib.blake2b(value.encode(), digest_size=size).digest()


def is_native_id(value: str, size: int) -> bool:
    """The id travels as itself (not hashed), so receivers store it unchanged."""
    return _id_bytes(value, size).hex() == value.strip().lower().replace("-", "")


def any_value(value: Any) -> AnyValue:
    """A Python value as an OTLP attribute value: primitives as themselves, homogeneous lists
    of primitives as arrays, anything else as JSON text."""
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        if -_INT64_MAX - 1 <= value <= _INT64_MAX:
            return AnyValue(int_value=value)
        return AnyValue(string_value=str(value))
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, (list, tuple)) and _primitive_list(value):
        array = AnyValue()
        array.array_value.values.extend(any_value(item) for item in value)
        return array
    return AnyValue(string_value=dumps(value))


def _primitive_list(values: Iterable[Any]) -> bool:
    kinds = {type(v) for v in values}
    return len(kinds) <= 1 and kinds <= {str, bool, int, float}


def key_values(attributes: Mapping[str, Any]) -> list[KeyValue]:
    return [
        KeyValue(key=key, value=any_value(value))
        for key, value in attributes.items()
        if value is not None
    ]


@dataclass
class OtlpSpan:
    """One span ready for the wire, with the resource it belongs to."""

    resource: dict[str, Any]
    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes | None
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    error_message: str | None = None
    is_error: bool = False
    kind: int = Span.SPAN_KIND_INTERNAL


def build_request(spans: Iterable[OtlpSpan]) -> ExportTraceServiceRequest:
    """One request; spans sharing a resource share a ResourceSpans (one scope: traceyard)."""
    request = ExportTraceServiceRequest()
    groups: dict[str, ResourceSpans] = {}
    for span in spans:
        key = dumps(sorted(span.resource.items()))
        group = groups.get(key)
        if group is None:
            group = request.resource_spans.add()
            group.resource.attributes.extend(key_values(span.resource))
            scope_spans = group.scope_spans.add()
            scope_spans.scope.name = SCOPE_NAME
            scope_spans.scope.version = __version__
            groups[key] = group
        pb = group.scope_spans[0].spans.add()
        pb.trace_id = span.trace_id
        pb.span_id = span.span_id
        if span.parent_span_id is not None:
            pb.parent_span_id = span.parent_span_id
        pb.name = span.name
        pb.kind = span.kind
        pb.start_time_unix_nano = span.start_ns
        pb.end_time_unix_nano = span.end_ns
        pb.attributes.extend(key_values(span.attributes))
        if span.is_error:
            pb.status.code = Status.STATUS_CODE_ERROR
            if span.error_message:
                pb.status.message = span.error_message
    return request


def span_skeleton(record: Any, resource: dict[str, Any], attributes: dict[str, Any]) -> OtlpSpan:
    """The parts of a span every convention shares: ids, name, times, error status."""
    fields = record.fields
    parent = fields.get("parent_id")
    start = fields.get("start_time") or fields.get("end_time") or 0
    end = fields.get("end_time") or 0
    level = fields.get("level")
    level_name = getattr(level, "value", level)
    return OtlpSpan(
        resource=resource,
        trace_id=trace_id_bytes(record.trace_id),
        span_id=span_id_bytes(record.id),
        parent_span_id=span_id_bytes(parent) if isinstance(parent, str) and parent else None,
        name=str(fields.get("name") or "span"),
        start_ns=int(start),
        end_ns=int(end),
        attributes=attributes,
        error_message=fields.get("status_message"),
        is_error=level_name == "ERROR",
    )

"""What a forwarding target's convention must provide: requests out, rejections back.

A convention turns finished spans and scores into HTTP requests in one target's dialect
(Langfuse, GenAI/OpenInference OTLP) and reads how many items a 2xx answer still refused.
The forwarder (:mod:`traceyard.forward.forwarder`) owns queues, threads, retries and counters.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from traceyard.forward.assemble import SpanRecord
from traceyard.model import Event

PROTOBUF = "application/x-protobuf"
_GZIP_LEVEL = 6  # forwarding is off the hot path: smaller bodies for remote collectors


@dataclass
class Outgoing:
    """One request to send, and how many spans or scores it carries."""

    url: str
    body: bytes
    count: int
    headers: dict[str, str] = field(default_factory=dict)


class Convention(Protocol):
    def spans_request(self, spans: Sequence[SpanRecord]) -> Outgoing: ...

    def scores_request(self, scores: Sequence[Event]) -> Outgoing | None:
        """None: this target has no place for scores (they are counted as skipped)."""
        ...

    def rejected_in(self, request: Outgoing, response: httpx.Response) -> int:
        """Items a 2xx response says it did not take."""
        ...


def gzipped(body: bytes, headers: dict[str, str]) -> bytes:
    headers["Content-Encoding"] = "gzip"
    return gzip.compress(body, _GZIP_LEVEL)


def otlp_rejected(response: httpx.Response) -> int:
    """``partial_success.rejected_spans`` of an OTLP answer (protobuf or JSON)."""
    if not response.content:
        return 0
    content_type = response.headers.get("content-type", "")
    if "json" in content_type:
        try:
            body: Any = response.json()
        except ValueError:
            return 0
        partial = body.get("partialSuccess") if isinstance(body, dict) else None
        rejected = partial.get("rejectedSpans", 0) if isinstance(partial, dict) else 0
        try:
            return int(rejected)
        except (TypeError, ValueError):
            return 0
    if "protobuf" in content_type:
        try:
            answer = ExportTraceServiceResponse.FromString(response.content)
        except DecodeError:
            return 0
        return int(answer.partial_success.rejected_spans)
    return 0

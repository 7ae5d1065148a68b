"""Forwarding to Langfuse: spans as OTLP with ``langfuse.*`` attributes, scores as events.

Spans go to ``<host>/api/public/otel/v1/traces`` (the path every current Langfuse SDK uses;
the newest servers accept trace data there only), with HTTP Basic ``public_key:secret_key``
and ``x-langfuse-ingestion-version: 4``. The attribute names are the SDK's
(``langfuse/_client/attributes.py``), so Langfuse maps them as it maps its own SDK's spans:

* the observation: ``langfuse.observation.{type, level, status_message, input, output,
  metadata.<key>, model.name, model.parameters, usage_details, cost_details,
  completion_start_time, prompt.name, prompt.version}``;
* its trace, on every span as the v4/v5 SDKs propagate it: ``langfuse.trace.{name, tags,
  metadata.<key>}``, ``user.id``, ``session.id``, ``langfuse.{release, version, environment}``;
  the trace's own input/output (``langfuse.trace.input/output``) on the root span.

Inputs and outputs are sent as the SDK sends them: a string as itself, anything else as JSON;
a string that would itself parse as JSON is JSON-encoded, so the server's decoding gives back
the same string. Usage and cost are our disjoint buckets with their ``total``: Langfuse reads
``input``/``output`` as exclusive of their details, as we do.

OTLP has no scores, so they go to ``/api/public/ingestion`` as ``score-create`` events (what
SDK v3/v4 do), with an envelope id derived from the score's content: a re-sent score is
deduplicated, a changed one is an update.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import httpx

from traceyard._internal.serialize import dumps
from traceyard._version import __version__
from traceyard.forward.assemble import SpanRecord
from traceyard.forward.config import LangfuseTarget
from traceyard.forward.convention import PROTOBUF, Outgoing, gzipped
from traceyard.forward.otlp_pb import build_request, span_id_bytes, span_skeleton, trace_id_bytes
from traceyard.model import Event

OTLP_PATH = "/api/public/otel/v1/traces"
INGESTION_PATH = "/api/public/ingestion"
_ENVELOPE_NAMESPACE = uuid.UUID("6f1d3c52-7a5e-4a8e-9a43-2b8f0c7d9e11")


class LangfuseConvention:
    def __init__(self, target: LangfuseTarget) -> None:
        self.target = target
        pair = f"{target.public_key}:{target.secret_key.get_secret_value()}"
        self._headers = {
            "Authorization": "Basic " + base64.b64encode(pair.encode()).decode(),
            "x-langfuse-sdk-name": "traceyard",
            "x-langfuse-sdk-version": __version__,
            "x-langfuse-public-key": target.public_key,
        }

    def spans_request(self, spans: Sequence[SpanRecord]) -> Outgoing:
        request = build_request(
            span_skeleton(span, {"service.name": span.project}, span_attributes(span))
            for span in spans
        )
        headers = {
            **self._headers,
            "Content-Type": PROTOBUF,
            "x-langfuse-ingestion-version": "4",
        }
        body = gzipped(request.SerializeToString(), headers)
        return Outgoing(self.target.host + OTLP_PATH, body, len(spans), headers)

    def scores_request(self, scores: Sequence[Event]) -> Outgoing:
        batch = [score_event(score) for score in scores]
        body = dumps({"batch": batch, "metadata": {"sdk_name": "traceyard"}}).encode()
        headers = {**self._headers, "Content-Type": "application/json"}
        return Outgoing(self.target.host + INGESTION_PATH, body, len(scores), headers)

    def rejected_in(self, request: Outgoing, response: httpx.Response) -> int:
        if request.url.endswith(INGESTION_PATH):
            try:
                errors = response.json().get("errors") or []
            except (ValueError, AttributeError):
                return 0
            return len(errors) if isinstance(errors, list) else 0
        from traceyard.forward.convention import otlp_rejected

        return otlp_rejected(response)


# ------------------------------------------------------------------------------ spans


def span_attributes(span: SpanRecord) -> dict[str, Any]:
    f = span.fields
    a: dict[str, Any] = {}
    obs_type = _value(f.get("type"))
    a["langfuse.observation.type"] = obs_type or "span"
    level = _value(f.get("level"))
    if level and level != "DEFAULT":
        a["langfuse.observation.level"] = level
    _put(a, "langfuse.observation.status_message", f.get("status_message"))
    if f.get("input") is not None:
        a["langfuse.observation.input"] = io_text(f["input"])
    if f.get("output") is not None:
        a["langfuse.observation.output"] = io_text(f["output"])
    _metadata(a, "langfuse.observation.metadata", f.get("metadata"))
    _put(a, "langfuse.observation.model.name", f.get("model"))
    if f.get("model_parameters"):
        a["langfuse.observation.model.parameters"] = dumps(f["model_parameters"])
    if f.get("usage"):
        a["langfuse.observation.usage_details"] = dumps(f["usage"])
    if f.get("cost"):
        a["langfuse.observation.cost_details"] = dumps(f["cost"])
    if f.get("completion_start_time"):
        a["langfuse.observation.completion_start_time"] = iso(f["completion_start_time"])
    _put(a, "langfuse.observation.prompt.name", f.get("prompt_name"))
    _put(a, "langfuse.observation.prompt.version", f.get("prompt_version"))

    t = span.trace
    _put(a, "langfuse.trace.name", t.get("name"))
    _put(a, "user.id", t.get("user_id"))
    _put(a, "session.id", t.get("session_id"))
    if t.get("tags"):
        a["langfuse.trace.tags"] = [str(tag) for tag in t["tags"]]
    _metadata(a, "langfuse.trace.metadata", t.get("metadata"))
    _put(a, "langfuse.release", t.get("release"))
    _put(a, "langfuse.version", t.get("version"))
    _put(a, "langfuse.environment", t.get("environment"))
    if span.is_root:
        if t.get("input") is not None:
            a["langfuse.trace.input"] = io_text(t["input"])
        if t.get("output") is not None:
            a["langfuse.trace.output"] = io_text(t["output"])
    return a


def io_text(value: Any) -> str:
    """A string as itself (unless it would parse as JSON), anything else as JSON."""
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            return value
    return dumps(value)


def _metadata(attributes: dict[str, Any], prefix: str, metadata: Any) -> None:
    if not isinstance(metadata, dict):
        if metadata is not None:
            attributes[prefix] = dumps(metadata)
        return
    for key, value in metadata.items():
        if value is None:
            continue
        if isinstance(value, (str, bool, int, float)):
            attributes[f"{prefix}.{key}"] = value
        else:
            attributes[f"{prefix}.{key}"] = dumps(value)


def _put(attributes: dict[str, Any], key: str, value: Any) -> None:
    if value is not None and value != "":
        attributes[key] = value


def _value(value: Any) -> Any:
    return getattr(value, "value", value)


def iso(ns: int) -> str:
    """Nanoseconds to ISO 8601 with microseconds and ``Z``, as the SDKs send times."""
    moment = datetime.fromtimestamp(ns // 1000 / 1e6, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ------------------------------------------------------------------------------ scores


def score_event(score: Event) -> dict[str, Any]:
    """A ``score-create`` ingestion event for one canonical score."""
    f = score.fields
    data_type = str(_value(f.get("data_type")) or "numeric").upper()
    value: Any
    if data_type == "CATEGORICAL":
        value = f.get("string_value") if f.get("string_value") is not None else f.get("value")
    else:
        value = f.get("value")
    body: dict[str, Any] = {
        "id": score.id,
        "name": f.get("name") or "score",
        "value": value,
        "dataType": data_type,
        "source": str(_value(f.get("source")) or "api").upper(),
    }
    if score.trace_id:
        body["traceId"] = trace_id_bytes(score.trace_id).hex()
    if f.get("observation_id"):
        body["observationId"] = span_id_bytes(f["observation_id"]).hex()
    for key, name in (("session_id", "sessionId"), ("comment", "comment")):
        if f.get(key) is not None:
            body[name] = f[key]
    if f.get("metadata"):
        body["metadata"] = f["metadata"]
    if f.get("timestamp"):
        body["timestamp"] = iso(f["timestamp"])
    envelope = uuid.uuid5(_ENVELOPE_NAMESPACE, dumps(body))
    return {
        "id": str(envelope),
        "type": "score-create",
        "timestamp": iso(time.time_ns()),
        "body": body,
    }

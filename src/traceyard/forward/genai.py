"""Forwarding to any OTLP/HTTP receiver: OTel GenAI (``gen_ai.*``) and OpenInference.

Both conventions at once, because receivers read one or the other: Phoenix and Arize read
OpenInference, OTel-native backends (and Langfuse, MLflow, traceyard) read ``gen_ai.*``.

* type: ``openinference.span.kind`` (LLM, EMBEDDING, CHAIN, TOOL, AGENT, RETRIEVER, GUARDRAIL,
  EVALUATOR; UNKNOWN for plain spans and events) and ``gen_ai.operation.name`` where GenAI has
  one (chat, embeddings, invoke_agent, execute_tool, retrieval);
* model: ``gen_ai.request.model``, ``gen_ai.response.model``, ``llm.model_name``; parameters:
  ``gen_ai.request.<name>`` for scalars and ``llm.invocation_parameters`` (JSON) for all;
* usage: ``gen_ai.usage.input_tokens``/``output_tokens`` INCLUDE their cache and reasoning
  parts (the GenAI definition), with ``gen_ai.usage.cache_read.input_tokens``,
  ``cache_creation.input_tokens``, ``reasoning.output_tokens`` and ``total_tokens``; the same
  as ``llm.token_count.{prompt, completion, total, prompt_details.*, completion_details.*}``;
* cost (USD): ``gen_ai.usage.cost`` (total) and ``llm.cost.{prompt, completion, total}``,
  prompt and completion including their details as OpenInference defines them;
* input/output: ``input.value``/``output.value`` with their MIME type (JSON unless a string),
  the exact value, so nothing is lost in a message-format conversion;
* trace: ``session.id`` (+ ``gen_ai.conversation.id``), ``user.id``, ``tag.tags``, and
  ``metadata`` (JSON): the span's own, on the root span merged with the trace's; the
  environment and version on the resource (``deployment.environment.name``,
  ``service.version``), the project as ``service.name`` and ``openinference.project.name``.

What neither convention can say is not invented: a level other than ERROR (ERROR is the span
status), an ``event`` type (sent as a zero-length span), the trace's release, prompt links and
scores (counted as skipped).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from traceyard._internal.serialize import dumps
from traceyard.forward.assemble import SpanRecord
from traceyard.forward.config import OtlpTarget
from traceyard.forward.convention import PROTOBUF, Outgoing, gzipped, otlp_rejected
from traceyard.forward.otlp_pb import build_request, span_skeleton
from traceyard.model import Event

_OPENINFERENCE_KINDS = {
    "generation": "LLM",
    "embedding": "EMBEDDING",
    "chain": "CHAIN",
    "tool": "TOOL",
    "agent": "AGENT",
    "retriever": "RETRIEVER",
    "guardrail": "GUARDRAIL",
    "evaluator": "EVALUATOR",
}
_GEN_AI_OPERATIONS = {
    "generation": "chat",
    "embedding": "embeddings",
    "agent": "invoke_agent",
    "tool": "execute_tool",
    "retriever": "retrieval",
}
#: Model parameters that have a ``gen_ai.request.*`` attribute of their own.
_GEN_AI_PARAMETERS = frozenset(
    {
        "temperature",
        "max_tokens",
        "top_p",
        "top_k",
        "frequency_penalty",
        "presence_penalty",
        "seed",
        "stop_sequences",
        "choice.count",
    }
)
_INPUT_DETAILS = ("cache_read", "cache_write", "input_audio")
_OUTPUT_DETAILS = ("reasoning", "output_audio")
_TOKEN_BUCKETS = frozenset({"input", "output", "total", *_INPUT_DETAILS, *_OUTPUT_DETAILS})


class GenAiConvention:
    def __init__(self, target: OtlpTarget) -> None:
        self.target = target

    def spans_request(self, spans: Sequence[SpanRecord]) -> Outgoing:
        request = build_request(
            span_skeleton(span, resource_attributes(span), span_attributes(span)) for span in spans
        )
        headers = {**self.target.headers, "Content-Type": PROTOBUF}
        body = request.SerializeToString()
        if self.target.compression == "gzip":
            body = gzipped(body, headers)
        return Outgoing(self.target.endpoint, body, len(spans), headers)

    def scores_request(self, scores: Sequence[Event]) -> Outgoing | None:
        return None

    def rejected_in(self, request: Outgoing, response: httpx.Response) -> int:
        return otlp_rejected(response)


def resource_attributes(span: SpanRecord) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "service.name": span.project,
        "openinference.project.name": span.project,
    }
    if span.trace.get("environment"):
        resource["deployment.environment.name"] = span.trace["environment"]
    if span.trace.get("version"):
        resource["service.version"] = span.trace["version"]
    return resource


def span_attributes(span: SpanRecord) -> dict[str, Any]:
    f = span.fields
    a: dict[str, Any] = {}
    obs_type = str(getattr(f.get("type"), "value", f.get("type")) or "span")
    a["openinference.span.kind"] = _OPENINFERENCE_KINDS.get(obs_type, "UNKNOWN")
    if obs_type in _GEN_AI_OPERATIONS:
        a["gen_ai.operation.name"] = _GEN_AI_OPERATIONS[obs_type]
    _io(a, "input", f.get("input"))
    _io(a, "output", f.get("output"))
    model = f.get("model")
    if model:
        a["gen_ai.request.model"] = model
        a["gen_ai.response.model"] = model
        a["llm.model_name"] = model
    _parameters(a, f.get("model_parameters"))
    _usage(a, f.get("usage"))
    _cost(a, f.get("cost"))
    start, first = f.get("start_time"), f.get("completion_start_time")
    if isinstance(start, int) and isinstance(first, int) and first >= start:
        a["gen_ai.response.time_to_first_chunk"] = (first - start) / 1e9

    t = span.trace
    if t.get("session_id"):
        a["session.id"] = t["session_id"]
        a["gen_ai.conversation.id"] = t["session_id"]
    if t.get("user_id"):
        a["user.id"] = t["user_id"]
    if t.get("tags"):
        a["tag.tags"] = [str(tag) for tag in t["tags"]]
    metadata: dict[str, Any] = {}
    if span.is_root and isinstance(t.get("metadata"), dict):
        metadata.update(t["metadata"])
    if isinstance(f.get("metadata"), dict):
        metadata.update(f["metadata"])
    if metadata:
        a["metadata"] = dumps(metadata)
    return a


def _io(attributes: dict[str, Any], which: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, str):
        attributes[f"{which}.value"] = value
        attributes[f"{which}.mime_type"] = "text/plain"
    else:
        attributes[f"{which}.value"] = dumps(value)
        attributes[f"{which}.mime_type"] = "application/json"


def _parameters(attributes: dict[str, Any], parameters: Any) -> None:
    if not isinstance(parameters, dict) or not parameters:
        return
    attributes["llm.invocation_parameters"] = dumps(parameters)
    for key, value in parameters.items():
        if key in _GEN_AI_PARAMETERS and isinstance(value, (int, float, str, bool, list)):
            attributes[f"gen_ai.request.{key}"] = value


def _usage(attributes: dict[str, Any], usage: Any) -> None:
    if not isinstance(usage, dict) or not usage:
        return
    n = {k: v for k, v in usage.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    prompt = n.get("input", 0) + sum(n.get(k, 0) for k in _INPUT_DETAILS)
    completion = n.get("output", 0) + sum(n.get(k, 0) for k in _OUTPUT_DETAILS)
    total = n.get("total", prompt + completion)
    has_prompt = "input" in n or any(k in n for k in _INPUT_DETAILS)
    has_completion = "output" in n or any(k in n for k in _OUTPUT_DETAILS)
    if has_prompt:
        attributes["gen_ai.usage.input_tokens"] = prompt
        attributes["llm.token_count.prompt"] = prompt
    if has_completion:
        attributes["gen_ai.usage.output_tokens"] = completion
        attributes["llm.token_count.completion"] = completion
    attributes["gen_ai.usage.total_tokens"] = total
    attributes["llm.token_count.total"] = total
    for bucket, gen_ai_key, oi_key in (
        ("cache_read", "cache_read.input_tokens", "prompt_details.cache_read"),
        ("cache_write", "cache_creation.input_tokens", "prompt_details.cache_write"),
        ("input_audio", "input_audio_tokens", "prompt_details.audio"),
        ("reasoning", "reasoning.output_tokens", "completion_details.reasoning"),
        ("output_audio", "output_audio_tokens", "completion_details.audio"),
    ):
        if n.get(bucket):
            attributes[f"gen_ai.usage.{gen_ai_key}"] = n[bucket]
            attributes[f"llm.token_count.{oi_key}"] = n[bucket]
    for unit, count in n.items():  # images, characters, web searches: units of their own
        if unit not in _TOKEN_BUCKETS:
            attributes[f"gen_ai.usage.{unit}"] = count


def _cost(attributes: dict[str, Any], cost: Any) -> None:
    if not isinstance(cost, dict) or not cost:
        return
    n = {k: float(v) for k, v in cost.items() if isinstance(v, (int, float))}
    prompt = n.get("input", 0.0) + sum(n.get(k, 0.0) for k in _INPUT_DETAILS)
    completion = n.get("output", 0.0) + sum(n.get(k, 0.0) for k in _OUTPUT_DETAILS)
    total = n.get("total", sum(v for k, v in n.items() if k != "total"))
    attributes["gen_ai.usage.cost"] = total
    attributes["llm.cost.total"] = total
    if prompt:
        attributes["llm.cost.prompt"] = prompt
    if completion:
        attributes["llm.cost.completion"] = completion
    for bucket, oi_key in (
        ("cache_read", "prompt_details.cache_read"),
        ("cache_write", "prompt_details.cache_write"),
        ("reasoning", "completion_details.reasoning"),
    ):
        if n.get(bucket):
            attributes[f"llm.cost.{oi_key}"] = n[bucket]

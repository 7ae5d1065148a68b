"""One OTel span -> canonical observation fields (+ the trace fields it carries).

Precedence, highest first, as Langfuse documents it: ``langfuse.*`` > ``gen_ai.*`` (current
and deprecated spellings) > OpenInference (``openinference.span.kind``, ``llm.*``,
``input.value``) > other frameworks' keys > generic span data (name, status, events).

Attributes are sorted into families in one pass (a span carries 10-60 of them and this runs
for every span of every request). What no rule consumed stays on the observation under
``metadata["otel"]["attributes"]``, apart from the user's own metadata, so metadata filters
see only what the user set (langfuse#5583 is the complaint this avoids).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from traceyard.cost.usage import normalize_usage
from traceyard.ingest._values import (
    as_int,
    as_str,
    as_tags,
    json_or_raw,
    maybe_json,
    normalize_cost,
    normalize_environment,
    parse_level,
    parse_time_ns,
)
from traceyard.model import Level, ObservationType

STATUS_ERROR = 2
_SPAN_KINDS = ("unspecified", "internal", "server", "client", "producer", "consumer")


@dataclass(slots=True)
class Scope:
    name: str
    version: str
    attributes: dict[str, Any]
    #: Langfuse SDK >= 5 JSON-encodes every metadata value, strings included.
    json_metadata: bool = False
    langfuse_sdk: bool = False


@dataclass(slots=True)
class SpanEvent:
    name: str
    time_ns: int
    attributes: dict[str, Any]


@dataclass(slots=True)
class OtelSpan:
    """A decoded span, independent of the wire encoding (protobuf or JSON)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: int
    start_ns: int
    end_ns: int | None
    attributes: dict[str, Any]
    events: list[SpanEvent]
    status_code: int
    status_message: str
    resource: dict[str, Any]
    scope: Scope


@dataclass(slots=True)
class MappedSpan:
    observation: dict[str, Any]
    #: trace fields the span states explicitly (langfuse.trace.*, user.id, session.id, ...)
    trace: dict[str, Any] = field(default_factory=dict)
    #: trace fields implied by being the root (its name, input, output): explicit ones win
    trace_implied: dict[str, Any] = field(default_factory=dict)
    is_root: bool = False
    #: the span states trace attributes beyond environment/release/version
    has_trace_updates: bool = False


def make_scope(name: str, version: str, attributes: dict[str, Any]) -> Scope:
    langfuse_sdk = name.startswith("langfuse-sdk")
    major = as_int(version.split(".", 1)[0]) if version else None
    return Scope(name, version, attributes, langfuse_sdk and (major or 0) >= 5, langfuse_sdk)


# ------------------------------------------------------------------------------ types

_OBSERVATION_TYPES = {t.value: t for t in ObservationType}
_OPENINFERENCE_KINDS = {
    "LLM": ObservationType.GENERATION,
    "EMBEDDING": ObservationType.EMBEDDING,
    "CHAIN": ObservationType.CHAIN,
    "TOOL": ObservationType.TOOL,
    "AGENT": ObservationType.AGENT,
    "RETRIEVER": ObservationType.RETRIEVER,
    "RERANKER": ObservationType.RETRIEVER,
    "GUARDRAIL": ObservationType.GUARDRAIL,
    "EVALUATOR": ObservationType.EVALUATOR,
    "PROMPT": ObservationType.SPAN,
}
_GEN_AI_OPERATIONS = {
    "chat": ObservationType.GENERATION,
    "completion": ObservationType.GENERATION,
    "text_completion": ObservationType.GENERATION,
    "generate_content": ObservationType.GENERATION,
    "generate": ObservationType.GENERATION,
    "embeddings": ObservationType.EMBEDDING,
    "invoke_agent": ObservationType.AGENT,
    "create_agent": ObservationType.AGENT,
    "execute_tool": ObservationType.TOOL,
    "retrieval": ObservationType.RETRIEVER,
    "invoke_workflow": ObservationType.CHAIN,
}
_MODEL_KEYS = (
    "gen_ai.response.model",
    "ai.model.id",
    "gen_ai.request.model",
    "llm.response.model",
    "llm.response.model_name",
    "llm.model_name",
    "embedding.model_name",
    "llm.request.model_name",
    "model",
)
# Keys of other frameworks that hold a span's input/output, after gen_ai and OpenInference.
_FRAMEWORK_IO = (
    ("mlflow.spanInputs", "mlflow.spanOutputs"),
    ("traceloop.entity.input", "traceloop.entity.output"),
    ("ai.prompt.messages", "ai.response.text"),
    ("ai.prompt", "ai.response.object"),
    ("gcp.vertex.agent.llm_request", "gcp.vertex.agent.llm_response"),
)
_TRACE_PLAIN_KEYS = frozenset({"user.id", "session.id", "gen_ai.conversation.id", "tag.tags"})
_COMPAT_METADATA_KEYS = frozenset({"langfuse_user_id", "langfuse_session_id", "langfuse_tags"})
_INPUT_KEYS = frozenset(
    {
        "gen_ai.input.messages",
        "gen_ai.system_instructions",
        "gen_ai.prompt",
        "gen_ai.tool.call.arguments",
        "input.value",
        "input.mime_type",
        *(pair[0] for pair in _FRAMEWORK_IO),
    }
)
_OUTPUT_KEYS = frozenset(
    {
        "gen_ai.output.messages",
        "gen_ai.completion",
        "gen_ai.tool.call.result",
        "output.value",
        "output.mime_type",
        *(pair[1] for pair in _FRAMEWORK_IO),
    }
)
# OpenInference wraps every list element in a one-key object; we drop that wrapper.
_OI_WRAPPERS = frozenset({"message", "tool_call", "message_content", "document", "prompt"})
_GEN_AI_INPUT_EVENTS = frozenset(
    {
        "gen_ai.system.message",
        "gen_ai.user.message",
        "gen_ai.assistant.message",
        "gen_ai.tool.message",
    }
)


# ------------------------------------------------------------------------------ mapping


def map_span(span: OtelSpan) -> MappedSpan:
    """Translate one span. Pure: reads ``span``, returns new dicts, never raises on odd data.

    Each rule runs only when the span carries its keys: this runs for every span of every
    request, and most spans carry a handful of the keys the rules know.
    """
    fam = _Families.sort(span.attributes)
    lf = fam.langfuse
    plain = fam.plain
    scope = span.scope
    decode_meta = json_or_raw if scope.json_metadata else maybe_json

    is_root = span.parent_span_id is None or lf.pop("langfuse.internal.as_root", None) in (
        True,
        "true",
        "True",
    )
    lf.pop("langfuse.internal.is_app_root", None)
    lfo = _LangfuseObservation.pop_from(lf) if lf else _NO_LANGFUSE

    # Keys are added in a fixed order, and only when they have a value.
    obs: dict[str, Any] = {} if is_root else {"parent_id": span.parent_span_id}
    obs["name"] = span.name or "span"
    obs["start_time"] = span.start_ns
    if span.end_ns is not None:
        obs["end_time"] = span.end_ns

    # --- model, usage, cost, parameters (needed before the type fallback)
    model = lfo.model
    if not plain.keys().isdisjoint(_MODEL_KEYS):
        for key in _MODEL_KEYS:
            value = plain.pop(key, None)
            if model is None and isinstance(value, str) and value:
                model = value
    if model is not None:
        obs["model"] = model

    usage_raw = lfo.usage_details
    if not isinstance(usage_raw, dict) or not usage_raw:
        usage_raw = fam.gen_ai_usage or fam.llm_token_count or None
    usage = normalize_usage(usage_raw) if usage_raw else {}
    if usage:
        obs["usage"] = usage

    cost = lfo.cost
    if not cost and (fam.gen_ai_usage_cost is not None or fam.llm_cost):
        cost = _gen_ai_or_openinference_cost(fam)
    if cost:
        obs["cost"] = cost

    params: dict[str, Any] = {}
    invocation = plain.pop("llm.invocation_parameters", None)
    if invocation is not None:
        invocation = maybe_json(invocation)
        if isinstance(invocation, dict):
            params.update(invocation)
    params.update(fam.gen_ai_request)
    if isinstance(lfo.model_parameters, dict):
        params.update(lfo.model_parameters)
    if params:
        obs["model_parameters"] = params

    # --- type
    obs["type"] = _observation_type(lfo.type, plain, model is not None or bool(usage))

    # --- level and status
    level = lfo.level
    if level is None and span.status_code == STATUS_ERROR:
        level = Level.ERROR
    if level is not None:
        obs["level"] = level
    status_message = lfo.status_message or span.status_message or None
    if status_message is None and span.events:
        status_message = _exception_summary(span.events)
    if status_message is not None:
        obs["status_message"] = status_message

    # --- input / output: the SDK sends a str unchanged and anything else JSON-encoded, so
    # (like the Langfuse server) we decode whatever parses as JSON.
    obs_input = (
        json_or_raw(lfo.input) if lfo.input is not None else _input_from_conventions(fam, span)
    )
    if obs_input is not None:
        obs["input"] = obs_input
    obs_output = (
        json_or_raw(lfo.output) if lfo.output is not None else _output_from_conventions(fam, span)
    )
    if obs_output is not None:
        obs["output"] = obs_output

    # --- timing and prompt link
    completion_start = lfo.completion_start_time
    ttfc = plain.pop("gen_ai.response.time_to_first_chunk", None)
    if completion_start is None and isinstance(ttfc, (int, float)) and ttfc >= 0:
        completion_start = span.start_ns + int(ttfc * 1e9)
    if completion_start is not None:
        obs["completion_start_time"] = completion_start
    if lfo.prompt_name:
        obs["prompt_name"] = lfo.prompt_name
        if lfo.prompt_version is not None:
            obs["prompt_version"] = lfo.prompt_version

    # --- metadata: the user's, then ours apart under "otel"
    metadata: dict[str, Any] = {}
    if fam.observation_metadata:
        for key, value in fam.observation_metadata.items():
            metadata[key] = decode_meta(value)
    whole = lfo.metadata
    if whole is not None:
        decoded = json_or_raw(whole) if scope.json_metadata else maybe_json(whole)
        if isinstance(decoded, dict):
            metadata.update(decoded)
        else:
            metadata["metadata"] = decoded
    oi_metadata = plain.pop("metadata", None)
    if oi_metadata is not None:
        oi_metadata = maybe_json(oi_metadata)
        if isinstance(oi_metadata, dict):
            metadata.update(oi_metadata)
        else:
            metadata["metadata"] = oi_metadata

    # --- trace-level attributes
    trace, has_trace_updates = _trace_fields(span, fam, metadata, decode_meta)
    if is_root:
        implied: dict[str, Any] = {"name": span.name or None}
        if obs_input is not None:
            implied["input"] = obs_input
        if obs_output is not None:
            implied["output"] = obs_output
        if isinstance(oi_metadata, dict):
            implied["metadata"] = dict(oi_metadata)
    else:
        implied = {}

    otel: dict[str, Any] = {}
    # What no rule consumed (langfuse.* keys we do not map included); ``plain`` is ours.
    leftovers = plain
    if lf:
        leftovers.update(lf)
    if leftovers:
        otel["attributes"] = leftovers
    if span.resource:
        otel["resource"] = span.resource
    otel["scope"] = (
        {"name": scope.name, "version": scope.version} if scope.version else {"name": scope.name}
    )
    if 0 < span.kind < len(_SPAN_KINDS):
        otel["span_kind"] = _SPAN_KINDS[span.kind]
    if span.events:
        other_events = [
            {"name": event.name, "time": event.time_ns, "attributes": event.attributes}
            for event in span.events
            if event.name not in _GEN_AI_INPUT_EVENTS and event.name != "gen_ai.choice"
        ]
        if other_events:
            otel["events"] = other_events
    metadata["otel"] = otel
    obs["metadata"] = metadata

    return MappedSpan(obs, trace, implied, is_root, has_trace_updates)


@dataclass(slots=True)
class _LangfuseObservation:
    """The ``langfuse.observation.*`` attributes (and their older spellings), read first
    because they win over every convention. Most spans carry none: see ``_NO_LANGFUSE``."""

    model: str | None = None
    usage_details: Any = None
    cost: dict[str, float] | None = None
    model_parameters: Any = None
    type: Any = None
    level: Level | None = None
    status_message: str | None = None
    input: Any = None
    output: Any = None
    completion_start_time: int | None = None
    prompt_name: str | None = None
    prompt_version: int | None = None
    metadata: Any = None

    @classmethod
    def pop_from(cls, lf: dict[str, Any]) -> _LangfuseObservation:
        prompt_name = as_str(lf.pop("langfuse.observation.prompt.name", None)) or as_str(
            lf.pop("langfuse.prompt.name", None)
        )
        prompt_version = as_int(lf.pop("langfuse.observation.prompt.version", None))
        if prompt_version is None:
            prompt_version = as_int(lf.pop("langfuse.prompt.version", None))
        metadata = lf.pop("langfuse.observation.metadata", None)
        if metadata is None:
            metadata = lf.pop("langfuse.metadata", None)
        return cls(
            model=as_str(lf.pop("langfuse.observation.model.name", None)),
            usage_details=maybe_json(lf.pop("langfuse.observation.usage_details", None)),
            cost=normalize_cost(maybe_json(lf.pop("langfuse.observation.cost_details", None))),
            model_parameters=maybe_json(lf.pop("langfuse.observation.model.parameters", None)),
            type=lf.pop("langfuse.observation.type", None),
            level=parse_level(lf.pop("langfuse.observation.level", None)),
            status_message=as_str(lf.pop("langfuse.observation.status_message", None)),
            input=lf.pop("langfuse.observation.input", None),
            output=lf.pop("langfuse.observation.output", None),
            completion_start_time=parse_time_ns(
                lf.pop("langfuse.observation.completion_start_time", None)
            ),
            prompt_name=prompt_name,
            prompt_version=prompt_version,
            metadata=metadata,
        )


#: Shared by every span without Langfuse attributes; never modified.
_NO_LANGFUSE = _LangfuseObservation()


def _observation_type(declared: Any, plain: dict[str, Any], has_model: bool) -> ObservationType:
    if isinstance(declared, str) and declared.lower() in _OBSERVATION_TYPES:
        return _OBSERVATION_TYPES[declared.lower()]
    oi_kind = plain.pop("openinference.span.kind", None)
    if isinstance(oi_kind, str) and oi_kind.upper() in _OPENINFERENCE_KINDS:
        return _OPENINFERENCE_KINDS[oi_kind.upper()]
    operation = plain.get("gen_ai.operation.name")
    if isinstance(operation, str) and operation in _GEN_AI_OPERATIONS:
        plain.pop("gen_ai.operation.name")
        return _GEN_AI_OPERATIONS[operation]
    return ObservationType.GENERATION if has_model else ObservationType.SPAN


def _gen_ai_or_openinference_cost(fam: _Families) -> dict[str, float]:
    raw: dict[str, Any] = {}
    gen_ai_cost = fam.gen_ai_usage_cost
    if isinstance(gen_ai_cost, (int, float)):
        raw["total"] = gen_ai_cost
    for key, value in fam.llm_cost.items():
        name = key.removeprefix("llm.cost.")
        name = {
            "prompt": "input",
            "completion": "output",
            "prompt_details.cache_read": "cache_read",
            "prompt_details.cache_write": "cache_write",
            "prompt_details.audio": "input_audio",
            "completion_details.reasoning": "reasoning",
            "completion_details.audio": "output_audio",
        }.get(name, name)
        raw.setdefault(name, value)
    return normalize_cost(raw)


def _input_from_conventions(fam: _Families, span: OtelSpan) -> Any:
    plain = fam.plain
    if (
        plain.keys().isdisjoint(_INPUT_KEYS)
        and not fam.gen_ai_prompt
        and not fam.llm_input_messages
        and not span.events
    ):
        return None  # the common case of a span without any input convention: skip the rest
    messages = maybe_json(plain.pop("gen_ai.input.messages", None))
    system = maybe_json(plain.pop("gen_ai.system_instructions", None))
    if messages is None and fam.gen_ai_prompt:
        messages = _unflatten(fam.gen_ai_prompt, "gen_ai.prompt.")
    legacy_prompt = plain.pop("gen_ai.prompt", None)
    if messages is None and legacy_prompt is not None:
        messages = maybe_json(legacy_prompt)
    if messages is None and span.events:
        messages = _messages_from_events(span.events, _GEN_AI_INPUT_EVENTS, "gen_ai.prompt")
    if system is not None:
        head = {"role": "system", "parts" if isinstance(system, list) else "content": system}
        messages = [head, *messages] if isinstance(messages, list) else [head]
    tool_args = plain.pop("gen_ai.tool.call.arguments", None)
    if messages is None and tool_args is not None:
        messages = maybe_json(tool_args)

    oi_value = plain.pop("input.value", None)
    mime = plain.pop("input.mime_type", None)
    if messages is not None:
        return messages
    if fam.llm_input_messages:
        return _unflatten(fam.llm_input_messages, "llm.input_messages.")
    if oi_value is not None:
        return _oi_value(oi_value, mime)
    return _framework_value(plain, 0)


def _output_from_conventions(fam: _Families, span: OtelSpan) -> Any:
    plain = fam.plain
    if (
        plain.keys().isdisjoint(_OUTPUT_KEYS)
        and not fam.gen_ai_completion
        and not fam.llm_output_messages
        and not span.events
    ):
        return None
    messages = maybe_json(plain.pop("gen_ai.output.messages", None))
    if messages is None and fam.gen_ai_completion:
        messages = _unflatten(fam.gen_ai_completion, "gen_ai.completion.")
    legacy_completion = plain.pop("gen_ai.completion", None)
    if messages is None and legacy_completion is not None:
        messages = maybe_json(legacy_completion)
    if messages is None and span.events:
        messages = _messages_from_events(span.events, {"gen_ai.choice"}, "gen_ai.completion")
    tool_result = plain.pop("gen_ai.tool.call.result", None)
    if messages is None and tool_result is not None:
        messages = maybe_json(tool_result)

    oi_value = plain.pop("output.value", None)
    mime = plain.pop("output.mime_type", None)
    if messages is not None:
        return messages
    if fam.llm_output_messages:
        return _unflatten(fam.llm_output_messages, "llm.output_messages.")
    if oi_value is not None:
        return _oi_value(oi_value, mime)
    return _framework_value(plain, 1)


def _oi_value(value: Any, mime: Any) -> Any:
    if mime == "text/plain":
        return value
    return maybe_json(value)


def _framework_value(plain: dict[str, Any], index: int) -> Any:
    for pair in _FRAMEWORK_IO:
        key = pair[index]
        if key in plain:
            return maybe_json(plain.pop(key))
    return None


def _messages_from_events(
    events: list[SpanEvent], names: set[str] | frozenset[str], content_key: str
) -> list[Any] | Any | None:
    """Older gen_ai instrumentations log messages as span events instead of attributes."""
    messages: list[Any] = []
    for event in events:
        if event.name in names:
            body = {k.removeprefix("gen_ai."): maybe_json(v) for k, v in event.attributes.items()}
            if (
                "role" not in body
                and event.name.startswith("gen_ai.")
                and event.name != ("gen_ai.choice")
            ):
                body["role"] = event.name.split(".")[1]
            messages.append(body)
        elif event.name in ("gen_ai.content.prompt", "gen_ai.content.completion"):
            value = event.attributes.get(content_key)
            if value is not None and event.name.endswith(content_key.split(".")[1]):
                return maybe_json(value)
    return messages or None


def _exception_summary(events: list[SpanEvent]) -> str | None:
    for event in events:
        if event.name == "exception":
            kind = as_str(event.attributes.get("exception.type"))
            message = as_str(event.attributes.get("exception.message"))
            if kind and message:
                return f"{kind}: {message}"
            return kind or message
    return None


def _trace_fields(
    span: OtelSpan, fam: _Families, obs_metadata: dict[str, Any], decode_meta: Any
) -> tuple[dict[str, Any], bool]:
    """Trace-level attributes a span states, and whether any is more than context
    (environment/release/version ride on every span and alone do not update a trace)."""
    lf = fam.langfuse
    could_state = (
        lf
        or fam.trace_metadata
        or not fam.plain.keys().isdisjoint(_TRACE_PLAIN_KEYS)
        or not obs_metadata.keys().isdisjoint(_COMPAT_METADATA_KEYS)
    )
    trace = _stated_trace_fields(fam, obs_metadata, decode_meta) if could_state else {}
    has_trace_updates = bool(trace)

    release = version = environment = None
    if lf:
        release = as_str(lf.pop("langfuse.release", None))
        version = as_str(lf.pop("langfuse.version", None))
        environment = lf.pop("langfuse.environment", None)
    resource = span.resource
    if resource:
        release = release or as_str(resource.get("langfuse.release"))
        version = version or as_str(resource.get("service.version"))
        environment = (
            environment
            or resource.get("langfuse.environment")
            or resource.get("deployment.environment.name")
            or resource.get("deployment.environment")
        )
    environment = normalize_environment(environment)
    if release:
        trace["release"] = release
    if version:
        trace["version"] = version
    if environment:
        trace["environment"] = environment
    return trace, has_trace_updates


def _stated_trace_fields(
    fam: _Families, obs_metadata: dict[str, Any], decode_meta: Any
) -> dict[str, Any]:
    lf = fam.langfuse
    plain = fam.plain
    trace: dict[str, Any] = {}
    name = as_str(lf.pop("langfuse.trace.name", None))
    if name:
        trace["name"] = name
    user_id = (
        as_str(plain.pop("user.id", None))
        or as_str(lf.pop("langfuse.user.id", None))
        or as_str(obs_metadata.pop("langfuse_user_id", None))
    )
    session_id = (
        as_str(plain.pop("session.id", None))
        or as_str(lf.pop("langfuse.session.id", None))
        or as_str(plain.pop("gen_ai.conversation.id", None))
        or as_str(obs_metadata.pop("langfuse_session_id", None))
    )
    tags: list[str] = []
    for raw in (
        lf.pop("langfuse.trace.tags", None),
        lf.pop("langfuse.tags", None),
        plain.pop("tag.tags", None),
        obs_metadata.pop("langfuse_tags", None),
    ):
        tags.extend(as_tags(raw) or ())

    metadata: dict[str, Any] = {}
    whole = lf.pop("langfuse.trace.metadata", None)
    if whole is not None:
        decoded = decode_meta(whole)
        if isinstance(decoded, dict):
            metadata.update(decoded)
    for key, value in fam.trace_metadata.items():
        metadata[key] = decode_meta(value)
    user_id = user_id or as_str(metadata.pop("langfuse_user_id", None))
    session_id = session_id or as_str(metadata.pop("langfuse_session_id", None))
    tags.extend(as_tags(metadata.pop("langfuse_tags", None)) or ())

    trace_input = lf.pop("langfuse.trace.input", None)
    trace_output = lf.pop("langfuse.trace.output", None)
    if user_id:
        trace["user_id"] = user_id
    if session_id:
        trace["session_id"] = session_id
    if tags:
        trace["tags"] = list(dict.fromkeys(tags))
    if metadata:
        trace["metadata"] = metadata
    if trace_input is not None:
        trace["input"] = maybe_json(trace_input)
    if trace_output is not None:
        trace["output"] = maybe_json(trace_output)
    return trace


# ------------------------------------------------------------------------------ families


class _Families:
    """A span's attributes sorted by the rules that read them, in one pass.

    ``plain`` and ``langfuse`` are the span's own dicts: the rules pop what they consume and
    the rest is kept as leftovers. The other families are only read; a span has few of them,
    so an absent one is the shared empty ``_NO_ATTRIBUTES`` rather than a new dict.
    """

    __slots__ = (
        "gen_ai_completion",
        "gen_ai_prompt",
        "gen_ai_request",
        "gen_ai_usage",
        "gen_ai_usage_cost",
        "langfuse",
        "llm_cost",
        "llm_input_messages",
        "llm_output_messages",
        "llm_token_count",
        "observation_metadata",
        "plain",
        "trace_metadata",
    )

    def __init__(self) -> None:
        self.plain: dict[str, Any] = {}
        self.langfuse: dict[str, Any] = {}
        self.observation_metadata: Mapping[str, Any] = _NO_ATTRIBUTES
        self.trace_metadata: Mapping[str, Any] = _NO_ATTRIBUTES
        self.gen_ai_usage: Mapping[str, Any] = _NO_ATTRIBUTES
        self.gen_ai_usage_cost: Any = None
        self.gen_ai_request: Mapping[str, Any] = _NO_ATTRIBUTES
        self.gen_ai_prompt: Mapping[str, Any] = _NO_ATTRIBUTES
        self.gen_ai_completion: Mapping[str, Any] = _NO_ATTRIBUTES
        self.llm_token_count: Mapping[str, Any] = _NO_ATTRIBUTES
        self.llm_cost: Mapping[str, Any] = _NO_ATTRIBUTES
        self.llm_input_messages: Mapping[str, Any] = _NO_ATTRIBUTES
        self.llm_output_messages: Mapping[str, Any] = _NO_ATTRIBUTES

    @classmethod
    def sort(cls, attributes: dict[str, Any]) -> _Families:
        fam = cls()
        plain = fam.plain
        langfuse = fam.langfuse
        for key, value in attributes.items():
            family, name = _KEY_FAMILIES.get(key) or _family_of(key)
            if family == "plain":
                plain[key] = value
            elif family == "langfuse":
                langfuse[key] = value
            elif family == "gen_ai_usage_cost":
                fam.gen_ai_usage_cost = value
            else:
                group = getattr(fam, family)
                if group is _NO_ATTRIBUTES:  # the span's first key of this family
                    group = {}
                    setattr(fam, family, group)
                group[name] = value
        return fam


#: The value of every family a span has no attribute of: shared, so never written to (the
#: families are typed read-only; a MappingProxyType would make every read slower).
_NO_ATTRIBUTES: Mapping[str, Any] = {}


#: ``_family_of``'s answers: a process sends the same few dozen keys on every span, so a
#: dict lookup replaces the prefix tests (bounded: keys are the client's to choose).
_KEY_FAMILIES: dict[str, tuple[str, str]] = {}
_MAX_KNOWN_KEYS = 4096


def _family_of(key: str) -> tuple[str, str]:
    """The ``_Families`` slot an attribute key goes to, and the key it is stored under."""
    if len(_KEY_FAMILIES) >= _MAX_KNOWN_KEYS:
        _KEY_FAMILIES.clear()
    family = _KEY_FAMILIES[key] = _classify(key)
    return family


def _classify(key: str) -> tuple[str, str]:
    if key.startswith("langfuse."):
        if key.startswith("langfuse.observation.metadata."):
            return "observation_metadata", key[30:]
        if key.startswith("langfuse.trace.metadata."):
            return "trace_metadata", key[24:]
        return "langfuse", key
    if key.startswith("gen_ai."):
        if key.startswith("gen_ai.usage."):
            return ("gen_ai_usage_cost" if key == "gen_ai.usage.cost" else "gen_ai_usage"), key
        if key.startswith("gen_ai.request."):
            if key == "gen_ai.request.model":
                return "plain", key
            return "gen_ai_request", key[15:]
        if key.startswith("gen_ai.prompt.") and key[14:15].isdigit():
            return "gen_ai_prompt", key
        if key.startswith("gen_ai.completion.") and key[18:19].isdigit():
            return "gen_ai_completion", key
        return "plain", key
    if key.startswith("llm."):
        if key.startswith("llm.token_count."):
            return "llm_token_count", key
        if key.startswith("llm.cost."):
            return "llm_cost", key
        if key.startswith("llm.input_messages."):
            return "llm_input_messages", key
        if key.startswith("llm.output_messages."):
            return "llm_output_messages", key
    return "plain", key


def _unflatten(flat: Mapping[str, Any], prefix: str) -> list[Any] | None:
    """``{"p.0.message.role": "user", "p.0.message.content": "hi"}`` -> ``[{role, content}]``."""
    if not flat:
        return None
    root: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key[len(prefix) :].split(".")
        node = root
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = maybe_json(value)
    built = _listify(root)
    return built if isinstance(built, list) else [built]


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {key: _listify(value) for key, value in node.items()}
    if len(converted) == 1:
        ((only_key, only_value),) = converted.items()
        if only_key in _OI_WRAPPERS:
            return only_value
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


def bytes_value(value: bytes) -> str:
    """OTLP ``bytes_value`` attributes, kept as base64 text (JSON has no bytes)."""
    return base64.b64encode(value).decode()

"""Langfuse's legacy ingestion batch (SDK v2, and scores from v3/v4) and score bodies -> events.

A batch is a list of envelopes ``{id, type, timestamp, body}``. Each envelope succeeds or fails
on its own (the endpoint always answers 207 with ``successes`` and ``errors`` by envelope id),
so one bad event never costs the good ones. The envelope id identifies a *delivery*: a retried
batch repeats it and is acknowledged without being applied twice. The body id identifies the
*entity*: a second event with the same body id updates it (merge, non-null fields win).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from traceyard.cost.usage import normalize_usage
from traceyard.ingest._values import (
    as_str,
    as_tags,
    normalize_cost,
    normalize_environment,
    parse_level,
    parse_time_ns,
)
from traceyard.model import Entity, Event, ObservationType, ScoreDataType, ScoreSource

#: Envelope ids remembered for deduplication (per process). A retry comes within seconds to
#: minutes; 100k ids cover far more than that at any plausible rate, in a few MB.
DEDUP_CAPACITY = 100_000

_OBSERVATION_EVENT_TYPES: dict[str, ObservationType | None] = {
    "span-create": ObservationType.SPAN,
    "span-update": ObservationType.SPAN,
    "generation-create": ObservationType.GENERATION,
    "generation-update": ObservationType.GENERATION,
    "event-create": ObservationType.EVENT,
    "agent-create": ObservationType.AGENT,
    "tool-create": ObservationType.TOOL,
    "chain-create": ObservationType.CHAIN,
    "retriever-create": ObservationType.RETRIEVER,
    "evaluator-create": ObservationType.EVALUATOR,
    "embedding-create": ObservationType.EMBEDDING,
    "guardrail-create": ObservationType.GUARDRAIL,
    # very old SDKs: the type is in the body
    "observation-create": None,
    "observation-update": None,
}
_KNOWN_TYPES = (
    "trace-create",
    "score-create",
    "sdk-log",
    *_OBSERVATION_EVENT_TYPES,
)


class BatchError(ValueError):
    """The request as a whole is not an ingestion batch (400, not 207)."""


# ------------------------------------------------------------------------------ bodies


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class TraceBody(_Body):
    id: str | None = Field(None, min_length=1, max_length=800)
    timestamp: Any = None
    name: str | None = None
    user_id: Any = Field(None, alias="userId")
    session_id: Any = Field(None, alias="sessionId")
    input: Any = None
    output: Any = None
    metadata: Any = None
    release: Any = None
    version: Any = None
    tags: Any = None
    environment: Any = None
    public: bool | None = None
    # the v2 decorator sends these (snake_case) beside the schema's fields
    start_time: Any = None
    end_time: Any = None


class ObservationBody(_Body):
    id: str | None = Field(None, min_length=1, max_length=800)
    trace_id: str | None = Field(None, alias="traceId")
    type: str | None = None
    parent_observation_id: str | None = Field(None, alias="parentObservationId")
    name: str | None = None
    start_time: Any = Field(None, alias="startTime")
    end_time: Any = Field(None, alias="endTime")
    completion_start_time: Any = Field(None, alias="completionStartTime")
    input: Any = None
    output: Any = None
    metadata: Any = None
    level: str | None = None
    status_message: Any = Field(None, alias="statusMessage")
    version: Any = None
    environment: Any = None
    model: str | None = None
    model_parameters: dict[str, Any] | None = Field(None, alias="modelParameters")
    usage: dict[str, Any] | None = None
    usage_details: dict[str, Any] | None = Field(None, alias="usageDetails")
    cost_details: dict[str, Any] | None = Field(None, alias="costDetails")
    prompt_name: str | None = Field(None, alias="promptName")
    prompt_version: int | None = Field(None, alias="promptVersion")

    @field_validator("level")
    @classmethod
    def _known_level(cls, value: str | None) -> str | None:
        if value is not None and parse_level(value) is None:
            raise ValueError("level must be one of DEBUG, DEFAULT, WARNING, ERROR")
        return value


class ScoreBody(_Body):
    id: str | None = Field(None, min_length=1, max_length=800)
    trace_id: str | None = Field(None, alias="traceId")
    observation_id: str | None = Field(None, alias="observationId")
    session_id: str | None = Field(None, alias="sessionId")
    dataset_run_id: str | None = Field(None, alias="datasetRunId")
    name: str = Field(min_length=1)
    value: float | str | bool
    data_type: str | None = Field(None, alias="dataType")
    comment: str | None = None
    metadata: Any = None
    environment: Any = None
    source: str | None = None
    timestamp: Any = None

    @field_validator("data_type")
    @classmethod
    def _known_data_type(cls, value: str | None) -> str | None:
        if value is not None and value.upper() not in _SCORE_TYPES:
            raise ValueError(f"dataType must be one of {', '.join(sorted(_SCORE_TYPES))}")
        return value


_SCORE_TYPES = {
    "NUMERIC": ScoreDataType.NUMERIC,
    "BOOLEAN": ScoreDataType.BOOLEAN,
    "CATEGORICAL": ScoreDataType.CATEGORICAL,
    # Langfuse's newer free-text kinds: stored as a categorical (string) value.
    "TEXT": ScoreDataType.CATEGORICAL,
    "CORRECTION": ScoreDataType.CATEGORICAL,
}
_SCORE_SOURCES = {s.value.upper(): s for s in ScoreSource}


# ------------------------------------------------------------------------------ results


@dataclass
class BatchResult:
    """Events to queue, and the per-envelope answer (filled in once the events are queued)."""

    events: list[Event] = field(default_factory=list)
    #: envelope ids whose events are in ``events`` (acknowledged once they are queued)
    pending: list[str] = field(default_factory=list)
    #: envelope ids acknowledged without queuing anything (duplicates, sdk-log)
    acknowledged: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def error(self, envelope_id: str, message: str, status: int = 400) -> None:
        self.errors.append(
            {"id": envelope_id, "status": status, "message": message, "error": message}
        )

    def response(self) -> dict[str, Any]:
        successes = [{"id": eid, "status": 201} for eid in (*self.pending, *self.acknowledged)]
        return {"successes": successes, "errors": self.errors}


class EnvelopeLog:
    """Recently applied envelope ids (bounded, oldest forgotten first), per project."""

    def __init__(self, capacity: int = DEDUP_CAPACITY) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._lock = threading.Lock()

    def seen(self, project: str, envelope_id: str) -> bool:
        with self._lock:
            return (project, envelope_id) in self._seen

    def remember(self, project: str, envelope_ids: Iterable[str]) -> None:
        with self._lock:
            for envelope_id in envelope_ids:
                self._seen[(project, envelope_id)] = None
                self._seen.move_to_end((project, envelope_id))
            while len(self._seen) > self.capacity:
                self._seen.popitem(last=False)


# ------------------------------------------------------------------------------ batches


def translate_batch(payload: Any, project: str, log: EnvelopeLog) -> BatchResult:
    """Translate an ingestion request body; per-envelope problems go to ``errors``."""
    if not isinstance(payload, dict) or not isinstance(payload.get("batch"), list):
        raise BatchError('body must be a JSON object {"batch": [...], "metadata": {...}}')
    result = BatchResult()
    envelopes: list[tuple[int, int, str, str, dict[str, Any], int | None]] = []
    for index, envelope in enumerate(payload["batch"]):
        if not isinstance(envelope, dict):
            result.error(f"batch[{index}]", "event must be an object {id, type, timestamp, body}")
            continue
        envelope_id = envelope.get("id")
        if not isinstance(envelope_id, str) or not envelope_id:
            result.error(f"batch[{index}]", "event has no string 'id'")
            continue
        event_type = envelope.get("type")
        body = envelope.get("body")
        if event_type not in _KNOWN_TYPES:
            result.error(envelope_id, f"unsupported event type {event_type!r}")
            continue
        if not isinstance(body, dict):
            result.error(envelope_id, "event 'body' must be an object")
            continue
        if log.seen(project, envelope_id):
            result.acknowledged.append(envelope_id)  # a retried delivery: already applied
            continue
        # Creates before updates, as Langfuse applies them; otherwise in batch order.
        is_update = 1 if str(event_type).endswith("-update") else 0
        timestamp = parse_time_ns(envelope.get("timestamp"))
        envelopes.append((is_update, index, envelope_id, str(event_type), body, timestamp))
    envelopes.sort(key=lambda item: (item[0], item[1]))
    for _, _, envelope_id, event_type, body, timestamp in envelopes:
        try:
            events = _translate_event(event_type, body, timestamp, project)
        except ValidationError as exc:
            result.error(envelope_id, f"invalid {event_type} body: {_describe(exc)}")
            continue
        except ValueError as exc:
            result.error(envelope_id, f"invalid {event_type} body: {exc}")
            continue
        if events:
            result.events.extend(events)
            result.pending.append(envelope_id)
        else:
            result.acknowledged.append(envelope_id)
    return result


def _translate_event(
    event_type: str, body: dict[str, Any], timestamp: int | None, project: str
) -> list[Event]:
    if event_type == "trace-create":
        return [trace_event(TraceBody.model_validate(body), project)]
    if event_type == "score-create":
        return [score_event(ScoreBody.model_validate(body), project, timestamp)]
    if event_type == "sdk-log":
        return []
    observation = ObservationBody.model_validate(body)
    if event_type.endswith("-update"):
        # An update never re-types what its create said (a span-update of a generation, or an
        # observation-update without a type, must not turn it into a span).
        declared = _body_type(observation.type) if observation.type else None
        return observation_events(observation, declared, project, update=True)
    return observation_events(observation, _OBSERVATION_EVENT_TYPES[event_type], project)


def trace_event(body: TraceBody, project: str) -> Event:
    trace_id = body.id or uuid.uuid4().hex
    fields: dict[str, Any] = {
        "name": body.name,
        "user_id": as_str(body.user_id),
        "session_id": as_str(body.session_id),
        "input": body.input,
        "output": body.output,
        "metadata": _metadata(body.metadata, _extras(body)),
        "release": as_str(body.release),
        "version": as_str(body.version),
        "tags": as_tags(body.tags),
        "environment": normalize_environment(body.environment),
        "start_time": parse_time_ns(body.start_time) or parse_time_ns(body.timestamp),
        "end_time": parse_time_ns(body.end_time),
    }
    if body.public is not None:
        fields["metadata"] = {**(fields["metadata"] or {}), "langfuse": {"public": body.public}}
    return Event(Entity.TRACE, trace_id, trace_id, project, _present(fields))


def observation_events(
    body: ObservationBody, declared: ObservationType | None, project: str, *, update: bool = False
) -> list[Event]:
    if not body.id:
        raise ValueError("'id' is required")
    obs_type = declared if update else declared or _body_type(body.type)
    trace_id = body.trace_id or body.id
    usage_source: dict[str, Any] | None = body.usage_details or None
    legacy_cost: dict[str, Any] = {}
    if body.usage:
        legacy_cost = {
            "input": body.usage.get("inputCost"),
            "output": body.usage.get("outputCost"),
            "total": body.usage.get("totalCost"),
        }
        usage_source = usage_source or {
            k: v for k, v in body.usage.items() if not k.endswith("Cost") and k != "unit"
        }
    usage = normalize_usage(usage_source) if usage_source else {}
    cost = normalize_cost(body.cost_details) or normalize_cost(
        {k: v for k, v in legacy_cost.items() if v is not None}
    )
    extras = _extras(body)
    if body.version is not None:
        extras["version"] = body.version
    fields: dict[str, Any] = {
        "parent_id": body.parent_observation_id,
        "type": obs_type,
        "name": body.name,
        "start_time": parse_time_ns(body.start_time),
        "end_time": parse_time_ns(body.end_time),
        "completion_start_time": parse_time_ns(body.completion_start_time),
        "input": body.input,
        "output": body.output,
        "metadata": _metadata(body.metadata, extras),
        "level": parse_level(body.level) if body.level else None,
        "status_message": as_str(body.status_message),
        "model": body.model,
        "model_parameters": body.model_parameters,
        "usage": usage or None,
        "cost": cost or None,
        "prompt_name": body.prompt_name,
        "prompt_version": body.prompt_version if body.prompt_name else None,
    }
    if obs_type is ObservationType.EVENT and fields["end_time"] is None:
        fields["end_time"] = fields["start_time"]
    events = [Event(Entity.OBSERVATION, body.id, trace_id, project, _present(fields))]
    environment = normalize_environment(body.environment)
    if environment:
        events.append(
            Event(Entity.TRACE, trace_id, trace_id, project, {"environment": environment})
        )
    return events


def score_event(body: ScoreBody, project: str, fallback_time: int | None = None) -> Event:
    """A score from a ``score-create`` body or a ``POST /api/public/scores`` item."""
    if not body.trace_id and not body.session_id and not body.dataset_run_id:
        raise ValueError("a score needs traceId, sessionId or datasetRunId")
    declared = _SCORE_TYPES.get(body.data_type.upper()) if body.data_type else None
    value = body.value
    fields: dict[str, Any]
    if isinstance(value, bool):
        fields = {"value": float(value), "string_value": str(value).lower()}
        data_type = declared or ScoreDataType.BOOLEAN
    elif isinstance(value, str):
        fields = {"string_value": value}
        data_type = declared or ScoreDataType.CATEGORICAL
        if declared is ScoreDataType.NUMERIC:
            raise ValueError("a NUMERIC score needs a number value")
    else:
        fields = {"value": float(value)}
        data_type = declared or ScoreDataType.NUMERIC
        if data_type is ScoreDataType.BOOLEAN:
            if value not in (0, 1):
                raise ValueError("a BOOLEAN score value must be 0 or 1")
            fields["string_value"] = "true" if value else "false"
        elif data_type is ScoreDataType.CATEGORICAL:
            fields["string_value"] = _number_text(value)
    source = _SCORE_SOURCES.get((body.source or "API").upper(), ScoreSource.API)
    extras = _extras(body)
    environment = normalize_environment(body.environment)
    if environment:
        extras["environment"] = environment
    if body.dataset_run_id:
        extras["datasetRunId"] = body.dataset_run_id
    fields.update(
        name=body.name,
        data_type=data_type,
        observation_id=body.observation_id,
        session_id=body.session_id,
        source=source,
        comment=body.comment,
        metadata=_metadata(body.metadata, extras),
        timestamp=parse_time_ns(body.timestamp) or fallback_time or time.time_ns(),
    )
    score_id = body.id or uuid.uuid4().hex
    return Event(Entity.SCORE, score_id, body.trace_id or "", project, _present(fields))


def parse_score(item: Any, project: str) -> Event:
    """Validate one score of ``POST /api/public/scores``; raises ValueError with the reason."""
    if not isinstance(item, dict):
        raise ValueError("a score must be a JSON object")
    try:
        return score_event(ScoreBody.model_validate(item), project)
    except ValidationError as exc:
        raise ValueError(_describe(exc)) from None


# ------------------------------------------------------------------------------ helpers


def _body_type(value: str | None) -> ObservationType:
    if value is None:
        return ObservationType.SPAN
    try:
        return ObservationType(value.lower())
    except ValueError:
        raise ValueError(f"unknown observation type {value!r}") from None


def _metadata(raw: Any, extras: dict[str, Any]) -> dict[str, Any] | None:
    """The user's metadata (a non-object kept under "metadata"), and fields we do not model
    under "langfuse", apart from it."""
    if raw is None:
        metadata: dict[str, Any] = {}
    elif isinstance(raw, dict):
        metadata = dict(raw)
    else:
        metadata = {"metadata": raw}
    if extras:
        metadata["langfuse"] = extras
    return metadata or None


def _extras(body: BaseModel) -> dict[str, Any]:
    """Body keys outside the schema (Langfuse's zod strips them; we keep them, apart)."""
    extra = body.model_extra or {}
    return {key: value for key, value in extra.items() if value is not None}


def _present(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        location = ".".join(str(part) for part in error["loc"]) or "body"
        parts.append(f"{location}: {error['msg']}")
    return "; ".join(parts)

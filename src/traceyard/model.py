"""The canonical model: what every capture path is translated into, and what every store keeps.

Two halves:

* **Write side** — :class:`Event`, a partial update of one trace, observation or score. Every
  capture edge (the tracer API, the LangChain handler, OTLP, the Langfuse API) produces events;
  the writer merges the events of a batch by entity id and the store upserts them, so a start
  event and an end event become one row, and an end whose start was never seen still lands.
* **Read side** — :class:`Trace`, :class:`Observation`, :class:`Score` and friends: Pydantic
  models returned by the store and served by the API as they are (snake_case field names).

Times are integer nanoseconds since the epoch on the write side (cheap to take on the app
thread, exact for OTLP) and timezone-aware datetimes on the read side.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum, IntEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ObservationType(str, Enum):
    """What an observation is. ``span``/``generation``/``event`` are the base kinds; the rest
    are finer span kinds shared by Langfuse, OpenInference and the OTel GenAI conventions."""

    SPAN = "span"
    GENERATION = "generation"
    EVENT = "event"
    AGENT = "agent"
    TOOL = "tool"
    CHAIN = "chain"
    RETRIEVER = "retriever"
    EMBEDDING = "embedding"
    EVALUATOR = "evaluator"
    GUARDRAIL = "guardrail"


class Level(str, Enum):
    """Severity of an observation, as in Langfuse."""

    DEBUG = "DEBUG"
    DEFAULT = "DEFAULT"
    WARNING = "WARNING"
    ERROR = "ERROR"


class TraceStatus(str, Enum):
    """Derived state of a trace. ``incomplete`` means events of it were dropped, so it must
    never look finished or stay ``running`` forever."""

    RUNNING = "running"
    OK = "ok"
    ERROR = "error"
    INCOMPLETE = "incomplete"


class ScoreDataType(str, Enum):
    NUMERIC = "numeric"
    BOOLEAN = "boolean"
    CATEGORICAL = "categorical"


class ScoreSource(str, Enum):
    API = "api"
    EVAL = "eval"
    ANNOTATION = "annotation"


# --------------------------------------------------------------------------- write side


class Entity(IntEnum):
    """What an :class:`Event` updates."""

    TRACE = 0
    OBSERVATION = 1
    SCORE = 2


@dataclass(slots=True)
class Event:
    """A partial update of one entity: the unit that travels through the queue.

    ``fields`` holds canonical field names (the read models' names, times as ``*_time`` in
    nanoseconds) with only what this event knows. Merge rules, used by the writer within a
    batch and by every store across batches: a ``None`` never overwrites a value; ``metadata``
    merges key by key; ``tags`` is a set union; anything else is replaced by the newer value.
    """

    entity: Entity
    id: str
    trace_id: str
    project: str
    fields: dict[str, Any]


#: Trace fields an event may set (plus ``incomplete``, set by the writer after drops).
TRACE_FIELDS = frozenset(
    {
        "name",
        "user_id",
        "session_id",
        "tags",
        "metadata",
        "release",
        "version",
        "environment",
        "input",
        "output",
        "start_time",
        "end_time",
        "incomplete",
    }
)

#: Observation fields an event may set.
OBSERVATION_FIELDS = frozenset(
    {
        "parent_id",
        "type",
        "name",
        "start_time",
        "end_time",
        "level",
        "status_message",
        "input",
        "output",
        "metadata",
        "model",
        "model_parameters",
        "usage",
        "cost",
        "completion_start_time",
        "prompt_name",
        "prompt_version",
    }
)

#: Score fields an event may set.
SCORE_FIELDS = frozenset(
    {
        "observation_id",
        "session_id",
        "name",
        "value",
        "string_value",
        "data_type",
        "source",
        "comment",
        "metadata",
        "timestamp",
    }
)


def merge_fields(into: dict[str, Any], newer: dict[str, Any]) -> None:
    """Apply the merge rules of :class:`Event` to ``into`` in place."""
    for key, value in newer.items():
        if value is None:
            continue
        if key == "metadata" and isinstance(value, dict):
            old = into.get("metadata")
            into["metadata"] = {**old, **value} if isinstance(old, dict) else value
        elif key == "tags":
            old_tags = into.get("tags")
            into["tags"] = _union(old_tags, value) if old_tags else list(value)
        else:
            into[key] = value


def _union(old: list[str], new: list[str]) -> list[str]:
    seen = dict.fromkeys(old)
    seen.update(dict.fromkeys(new))
    return list(seen)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def score_value_fields(
    value: float | bool | str, data_type: ScoreDataType | str | None = None
) -> dict[str, Any]:
    """A score's value fields: a boolean is 1/0 with "true"/"false", a string categorical, a
    number numeric, unless ``data_type`` says otherwise."""
    kind = ScoreDataType(data_type) if data_type is not None else None
    if isinstance(value, bool) or kind is ScoreDataType.BOOLEAN:
        flag = bool(value)
        return {
            "value": float(flag),
            "string_value": str(flag).lower(),
            "data_type": ScoreDataType.BOOLEAN,
        }
    if isinstance(value, str):
        return {"string_value": value, "data_type": kind or ScoreDataType.CATEGORICAL}
    return {"value": float(value), "data_type": kind or ScoreDataType.NUMERIC}


def ns_to_datetime(ns: int | None) -> datetime | None:
    """Nanoseconds since the epoch to an aware UTC datetime (microsecond precision)."""
    if ns is None:
        return None
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)


def datetime_to_ns(value: datetime) -> int:
    """An aware (or naive-as-UTC) datetime to nanoseconds since the epoch."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    # integer arithmetic: value.timestamp() is a float and can be off by a microsecond
    delta = value - _EPOCH
    return ((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds) * 1000


# --------------------------------------------------------------------------- read side


class _ReadModel(BaseModel):
    model_config = ConfigDict(frozen=True, use_enum_values=False)


class Observation(_ReadModel):
    """One node of a trace tree."""

    id: str
    trace_id: str
    parent_id: str | None = None
    type: ObservationType = ObservationType.SPAN
    name: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    level: Level = Level.DEFAULT
    status_message: str | None = None
    input: Any = None
    output: Any = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    model: str | None = None
    model_parameters: dict[str, Any] | None = None
    usage: dict[str, float] = Field(
        default_factory=dict,
        description="Disjoint buckets: input, output, cache_read, cache_write, reasoning, "
        "other named units, and total.",
    )
    cost: dict[str, float] = Field(default_factory=dict, description="USD per bucket + total.")
    completion_start_time: datetime | None = None
    prompt_name: str | None = None
    prompt_version: int | None = None
    latency_ms: float | None = None
    time_to_first_token_ms: float | None = None


class Score(_ReadModel):
    """An evaluation attached to a trace, an observation or a session."""

    id: str
    trace_id: str | None = None
    observation_id: str | None = None
    session_id: str | None = None
    project: str = "default"
    name: str
    value: float | None = None
    string_value: str | None = None
    data_type: ScoreDataType = ScoreDataType.NUMERIC
    source: ScoreSource = ScoreSource.API
    comment: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    timestamp: datetime | None = None


class Trace(_ReadModel):
    """A run tree's header, with totals derived from its observations."""

    id: str
    project: str = "default"
    name: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    release: str | None = None
    version: str | None = None
    environment: str | None = None
    input: Any = None
    output: Any = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    status: TraceStatus = TraceStatus.RUNNING
    latency_ms: float | None = None
    observation_count: int = 0
    error_count: int = 0
    usage: dict[str, float] = Field(default_factory=dict)
    total_tokens: float = 0
    total_cost: float = 0
    scores: list[Score] | None = Field(
        None, description="Scores of the trace, when the query asked for them."
    )


class TraceDetail(Trace):
    """A trace with its whole tree and its scores."""

    observations: list[Observation] = Field(default_factory=list)


class SessionSummary(_ReadModel):
    """A session (conversation, thread): the traces that share a session_id."""

    id: str
    project: str = "default"
    trace_count: int = 0
    user_ids: list[str] = Field(default_factory=list)
    start_time: datetime | None = None
    end_time: datetime | None = None
    total_tokens: float = 0
    total_cost: float = 0
    error_count: int = 0


class SessionDetail(SessionSummary):
    traces: list[Trace] = Field(default_factory=list)


class UserSummary(_ReadModel):
    id: str
    project: str = "default"
    trace_count: int = 0
    session_count: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    total_tokens: float = 0
    total_cost: float = 0
    error_count: int = 0

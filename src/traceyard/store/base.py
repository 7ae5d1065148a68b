"""The store contract: what every backend (SQLite, PostgreSQL, memory) does, and nothing more.

The writer calls :meth:`Store.write` with merged events from one thread; the query API calls
the read methods from any thread. ``tests/store_contract.py`` tests this contract once, against
every backend.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from traceyard.errors import StoreError
from traceyard.model import (
    Event,
    Level,
    Observation,
    Score,
    SessionDetail,
    SessionSummary,
    Trace,
    TraceDetail,
    TraceStatus,
    UserSummary,
)

T = TypeVar("T")


class TraceSort(str, Enum):
    START_TIME = "start_time"
    LATENCY = "latency"
    COST = "cost"
    TOKENS = "tokens"


class TraceQuery(BaseModel):
    """Filters, sort and page of a trace listing. Every filter is optional and they combine
    with AND; the same query drives listing and delete-by-filter."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    project: str | None = None
    name: str | None = Field(None, description="Substring of the trace name (case-insensitive).")
    user_id: str | None = None
    session_id: str | None = None
    tags: list[str] = Field(default_factory=list, description="The trace has all of these.")
    status: TraceStatus | None = None
    level: Level | None = Field(None, description="Some observation has this level.")
    start_after: datetime | None = None
    start_before: datetime | None = None
    min_latency_ms: float | None = None
    max_latency_ms: float | None = None
    min_cost: float | None = None
    model: str | None = Field(None, description="Some generation used this model.")
    prompt_name: str | None = Field(None, description="Some observation used this prompt.")
    prompt_version: int | None = Field(
        None, ge=1, description="... in this version (needs prompt_name)."
    )
    metadata: dict[str, str] = Field(
        default_factory=dict, description="Trace metadata key equals value (as text)."
    )
    text: str | None = Field(None, description="Substring of the name, input or output.")
    sort: TraceSort = TraceSort.START_TIME
    descending: bool = True
    limit: int = Field(50, ge=1, le=1000)
    cursor: str | None = None

    @model_validator(mode="after")
    def _version_names_its_prompt(self) -> TraceQuery:
        if self.prompt_version is not None and self.prompt_name is None:
            raise ValueError("prompt_version needs prompt_name")
        return self


class TimeseriesGroup(str, Enum):
    MODEL = "model"
    NAME = "name"


class TimeseriesQuery(BaseModel):
    """Aggregates per time bucket over traces that start in [start, end)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    project: str | None = None
    start: datetime
    end: datetime
    interval_s: int = Field(3600, ge=1)
    group_by: TimeseriesGroup | None = Field(
        None, description="Break down by generation model or by trace name."
    )


class TimeseriesPoint(BaseModel):
    """One bucket (and group). Buckets hold traces by their start time; only buckets with
    traces are returned (sparse, ordered by bucket then group). Percentiles are nearest-rank
    (PostgreSQL's percentile_disc) over finished traces; running ones have no latency yet.

    Grouped by model, a bucket's figures are those of the generations of that model in the
    bucket's traces: ``traces`` that used it, ``observations`` (generations), ``errors`` among
    them, their latency percentiles, tokens and cost."""

    bucket_start: datetime
    group: str | None = None
    traces: int = 0
    observations: int = 0
    errors: int = Field(0, description="Observations at level ERROR.")
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    total_tokens: float = 0
    total_cost: float = 0


class Prompt(BaseModel):
    """A version of a managed prompt (Langfuse prompt management). A label is on at most one
    version of a name; ``latest`` always names the newest version."""

    project: str = "default"
    name: str
    version: int
    type: str = Field("text", description="text or chat")
    prompt: Any
    config: dict[str, Any] = Field(default_factory=dict)
    labels: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    commit_message: str | None = None
    created_at: datetime | None = None


class PromptUsage(BaseModel):
    """How many observations of a project name one prompt version, and in how many traces.
    Counting stops at a limit: ``capped`` means "at least this many"."""

    project: str
    name: str
    version: int | None = Field(None, description="None: observations that name no version.")
    observations: int = 0
    traces: int = 0
    capped: bool = Field(False, description="The counts reached the limit and stopped there.")


class MediaRecord(BaseModel):
    """Bytes an SDK uploaded (images, audio, files), linked to a trace/observation field."""

    id: str
    project: str = "default"
    trace_id: str | None = None
    observation_id: str | None = None
    field: str | None = None
    content_type: str
    content_length: int
    sha256: str
    data: bytes | None = None
    created_at: datetime | None = None
    uploaded_at: datetime | None = None


class Page(BaseModel, Generic[T]):
    """One page of results; ``next_cursor`` is None on the last page."""

    data: list[T]
    next_cursor: str | None = None


@dataclass(frozen=True)
class StoreCounts:
    """Sizes a status page shows; cheap to get (no scan that grows with the data)."""

    backend: str
    traces: int
    observations: int
    scores: int
    size_bytes: int
    location: str
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Store(Protocol):
    """Where traces live. Writes are idempotent upserts keyed by ids, so a retried batch never
    duplicates anything."""

    backend: str

    def write(self, events: Sequence[Event]) -> None:
        """Apply events (in order, with the merge rules of :class:`Event`) in one transaction.

        Creates a trace row for any observation or score whose trace does not exist yet, and
        recomputes the derived totals of every trace touched.
        """
        ...

    def get_trace(self, trace_id: str) -> TraceDetail | None: ...

    def get_observation(self, observation_id: str) -> Observation | None: ...

    def list_traces(self, query: TraceQuery) -> Page[Trace]: ...

    def list_sessions(
        self, project: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page[SessionSummary]: ...

    def get_session(self, session_id: str, project: str | None = None) -> SessionDetail | None: ...

    def list_users(
        self, project: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page[UserSummary]: ...

    def list_scores(
        self,
        trace_id: str | None = None,
        name: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Score]: ...

    def delete_traces(self, trace_ids: Sequence[str]) -> int:
        """Delete traces with their observations, scores and payloads; returns how many."""
        ...

    def delete_where(self, query: TraceQuery) -> int:
        """Delete every trace the query matches (ignoring its limit and cursor)."""
        ...

    def prune(self, max_traces: int | None = None, older_than: datetime | None = None) -> int:
        """Retention: delete traces (oldest first, payloads included) beyond ``max_traces``
        and/or started before ``older_than``; returns how many were deleted."""
        ...

    def timeseries(self, query: TimeseriesQuery) -> list[TimeseriesPoint]:
        """Per-bucket traces, observations, errors, latency p50/p95, tokens and cost."""
        ...

    # Prompt management and media are configuration, written directly (not via the queue).

    def save_prompt(
        self,
        project: str,
        name: str,
        prompt: Any,
        *,
        type: str = "text",
        config: dict[str, Any] | None = None,
        labels: Sequence[str] = (),
        tags: Sequence[str] = (),
        commit_message: str | None = None,
    ) -> Prompt:
        """Add the next version of ``name`` (atomically numbered); its labels move to it."""
        ...

    def get_prompt(
        self, project: str, name: str, *, version: int | None = None, label: str | None = None
    ) -> Prompt | None:
        """By version, else by label, else the version labelled ``production``."""
        ...

    def list_prompts(self, project: str | None, name: str | None = None) -> list[Prompt]:
        """Every version, by project, name and version; ``project=None``: all projects."""
        ...

    def prompt_usage(
        self, project: str | None, name: str | None = None, *, limit: int = 1000
    ) -> list[PromptUsage]:
        """The use of each saved version (by project, name, version; then the same name with
        no version): observations of that project naming it and their traces, counted over
        at most ``limit`` observations each, so a heavily used prompt costs no more than a
        light one. Versions nothing names are left out."""
        ...

    def set_prompt_labels(
        self, project: str, name: str, version: int, labels: Sequence[str]
    ) -> Prompt | None:
        """Give ``version`` exactly ``labels`` (plus ``latest`` if it is the newest), taking
        them from the versions that had them; None when the version does not exist."""
        ...

    def save_media(self, media: MediaRecord) -> None: ...

    def get_media(self, media_id: str) -> MediaRecord | None: ...

    def counts(self) -> StoreCounts: ...

    def close(self) -> None:
        """Release connections; idempotent. Reads or writes afterwards raise StoreClosedError."""
        ...


# ----------------------------------------------------------------------------- cursors


def encode_cursor(values: Sequence[Any]) -> str:
    """An opaque keyset cursor: the sort key and id of the last row of a page."""
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[Any]:
    """Inverse of :func:`encode_cursor`; a malformed cursor is a :class:`StoreError`."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError) as exc:
        raise StoreError(f"malformed cursor {cursor!r}") from exc
    if not isinstance(values, list) or len(values) != size:
        raise StoreError(f"malformed cursor {cursor!r}")
    return values

"""Rows of the SQL backends → read models, shared so SQLite and PostgreSQL answer identically.

A row is anything indexable by column name (``sqlite3.Row``, a psycopg ``dict_row``). JSON
columns arrive as text on both backends (the PostgreSQL store loads ``jsonb`` as text), times
as integer nanoseconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

import orjson
from pydantic import TypeAdapter

from traceyard._internal.serialize import dumps
from traceyard.model import (
    Observation,
    Score,
    SessionDetail,
    SessionSummary,
    Trace,
    TraceStatus,
    UserSummary,
    datetime_to_ns,
    ns_to_datetime,
)
from traceyard.store.base import MediaRecord, Prompt, PromptUsage, TraceQuery, TraceSort

Payloads = dict[tuple[str, str], str]


class Row(Protocol):
    def __getitem__(self, key: str, /) -> Any: ...


def loads(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _payload(row: Row, payloads: Payloads, column: str, name: str) -> Any:
    if row[f"{column}_ref"]:
        text = payloads.get((row["id"], name))
        return None if text is None else orjson.loads(text)
    return loads(row[column])


def trace_fields(row: Row, payloads: Payloads) -> dict[str, Any]:
    return {
        "id": row["id"],
        "project": row["project"],
        "name": row["name"],
        "user_id": row["user_id"],
        "session_id": row["session_id"],
        "tags": loads(row["tags"]) or [],
        "metadata": loads(row["metadata"]) or {},
        "release": row["release"],
        "version": row["version"],
        "environment": row["environment"],
        "input": _payload(row, payloads, "input", "trace.input"),
        "output": _payload(row, payloads, "output", "trace.output"),
        # 0 means "no time known yet" (the derived columns are NOT NULL for their indexes).
        "start_time": ns_to_datetime(row["start_ns"]) if row["start_ns"] else None,
        "end_time": ns_to_datetime(row["end_ns"]) if row["end_ns"] else None,
        "status": TraceStatus(row["status"]),
        "latency_ms": row["latency_ms"] if row["start_ns"] and row["end_ns"] else None,
        "observation_count": row["observation_count"],
        "error_count": row["error_count"],
        "usage": loads(row["usage"]) or {},
        "total_tokens": row["total_tokens"],
        "total_cost": row["total_cost"],
    }


def observation(row: Row, payloads: Payloads) -> Observation:
    return observations([row], payloads)[0]


def observations(rows: Iterable[Row], payloads: Payloads) -> list[Observation]:
    """Many rows at once: one validation call for the whole list (a 1,000-observation trace
    spends most of its detail request here). Enums are validated from their stored text."""
    return _OBSERVATION_LIST.validate_python([_observation_fields(r, payloads) for r in rows])


def _observation_fields(row: Row, payloads: Payloads) -> dict[str, Any]:
    start, end, first = row["start_time"], row["end_time"], row["completion_start_time"]
    return {
        "id": row["id"],
        "trace_id": row["trace_id"],
        "parent_id": row["parent_id"],
        "type": row["type"] or "span",
        "name": row["name"],
        "start_time": ns_to_datetime(start),
        "end_time": ns_to_datetime(end),
        "level": row["level"] or "DEFAULT",
        "status_message": row["status_message"],
        "input": _payload(row, payloads, "input", "input"),
        "output": _payload(row, payloads, "output", "output"),
        "metadata": loads(row["metadata"]) or {},
        "model": row["model"],
        "model_parameters": loads(row["model_parameters"]),
        "usage": loads(row["usage"]) or {},
        "cost": loads(row["cost"]) or {},
        "completion_start_time": ns_to_datetime(first),
        "prompt_name": row["prompt_name"],
        "prompt_version": row["prompt_version"],
        "latency_ms": (end - start) / 1e6 if start is not None and end is not None else None,
        "time_to_first_token_ms": (
            (first - start) / 1e6 if start is not None and first is not None else None
        ),
    }


_OBSERVATION_LIST = TypeAdapter(list[Observation])


def score(row: Row) -> Score:
    return Score(
        id=row["id"],
        trace_id=row["trace_id"],
        observation_id=row["observation_id"],
        session_id=row["session_id"],
        project=row["project"],
        name=row["name"],
        value=row["value"],
        string_value=row["string_value"],
        data_type=row["data_type"],
        source=row["source"],
        comment=row["comment"],
        metadata=loads(row["metadata"]) or {},
        timestamp=ns_to_datetime(row["timestamp"]),
    )


def session(row: Row, user_ids: Iterable[str | None]) -> SessionSummary:
    return SessionSummary(
        id=row["session_id"],
        project=row["project"],
        trace_count=row["n"],
        user_ids=sorted({u for u in user_ids if u}),
        start_time=ns_to_datetime(row["first_ns"]) if row["first_ns"] else None,
        end_time=ns_to_datetime(row["last_ns"]) if row["last_ns"] else None,
        total_tokens=row["tokens"],
        total_cost=row["cost"],
        error_count=row["errors"] or 0,
    )


def user(row: Row) -> UserSummary:
    return UserSummary(
        id=row["user_id"],
        project=row["project"],
        trace_count=row["n"],
        session_count=row["sessions"],
        first_seen=ns_to_datetime(row["first_ns"]),
        last_seen=ns_to_datetime(row["last_start"]),
        total_tokens=row["tokens"],
        total_cost=row["cost"],
        error_count=row["errors"] or 0,
    )


def prompt(row: Row) -> Prompt:
    return Prompt(
        project=row["project"],
        name=row["name"],
        version=row["version"],
        type=row["type"],
        prompt=loads(row["prompt"]),
        config=loads(row["config"]) or {},
        labels=loads(row["labels"]) or [],
        tags=loads(row["tags"]) or [],
        commit_message=row["commit_message"],
        created_at=ns_to_datetime(row["created_at"]),
    )


def prompt_usage(key: tuple[str, str, int | None], row: Row, limit: int) -> PromptUsage:
    project, name, version = key
    return PromptUsage(
        project=project,
        name=name,
        version=version,
        observations=row["observations"],
        traces=row["traces"],
        capped=row["observations"] >= limit,
    )


def media(row: Row) -> MediaRecord:
    data = row["data"]
    return MediaRecord(
        id=row["id"],
        project=row["project"],
        trace_id=row["trace_id"],
        observation_id=row["observation_id"],
        field=row["field"],
        content_type=row["content_type"],
        content_length=row["content_length"],
        sha256=row["sha256"],
        data=bytes(data) if data is not None else None,
        created_at=ns_to_datetime(row["created_at"]),
        uploaded_at=ns_to_datetime(row["uploaded_at"]),
    )


def media_row(record: MediaRecord, now_ns: int) -> tuple[Any, ...]:
    """The row of :data:`MEDIA_COLUMNS` for ``record`` (created now unless it says when)."""

    def ns(value: datetime | None) -> int | None:
        return datetime_to_ns(value) if value is not None else None

    return (
        record.id,
        record.project,
        record.trace_id,
        record.observation_id,
        record.field,
        record.content_type,
        record.content_length,
        record.sha256,
        record.data,
        ns(record.created_at) or now_ns,
        ns(record.uploaded_at),
    )


MEDIA_COLUMNS = (
    "id",
    "project",
    "trace_id",
    "observation_id",
    "field",
    "content_type",
    "content_length",
    "sha256",
    "data",
    "created_at",
    "uploaded_at",
)

#: Sort key of a trace listing → the derived column it reads.
SORT_COLUMNS = {
    TraceSort.START_TIME: "start_ns",
    TraceSort.LATENCY: "latency_ms",
    TraceSort.COST: "total_cost",
    TraceSort.TOKENS: "total_tokens",
}


def session_detail(session_id: str, traces: Sequence[Trace]) -> SessionDetail | None:
    """A session from its traces (in start order); None when it has none."""
    if not traces:
        return None
    return SessionDetail(
        id=session_id,
        project=traces[0].project,
        trace_count=len(traces),
        user_ids=sorted({t.user_id for t in traces if t.user_id}),
        start_time=traces[0].start_time,
        end_time=max((t.end_time for t in traces if t.end_time), default=None),
        total_tokens=sum(t.total_tokens for t in traces),
        total_cost=sum(t.total_cost for t in traces),
        error_count=sum(1 for t in traces if t.error_count),
        traces=list(traces),
    )


def session_query(session_id: str, project: str | None) -> TraceQuery:
    """The listing :func:`session_detail` pages through: a session's traces, oldest first."""
    return TraceQuery(
        session_id=session_id,
        project=project,
        sort=TraceSort.START_TIME,
        descending=False,
        limit=1000,
    )


def json_text(value: Any) -> str:
    """The JSON text the SQL stores keep for a payload (what free-text search looks in)."""
    return dumps(value)


def metadata_text(value: Any) -> str | None:
    """A metadata value as the text a ``metadata`` filter compares with (JSON scalars as JSON
    text, strings as themselves); None never matches."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

"""Traces and observations: list with filters, detail, delete.

Query parameters map one to one onto :class:`~traceyard.store.base.TraceQuery`; ``tags`` and
``metadata`` repeat (``?tags=a&tags=b&metadata=env:prod``). A trace's detail carries its
payloads whole (inputs and outputs as stored, large ones decompressed), not links.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from traceyard.model import Level, Observation, Trace, TraceDetail, TraceStatus
from traceyard.server._json import model_response
from traceyard.server.errors import ApiError, ErrorDetail
from traceyard.server.params import Moment
from traceyard.server.state import ServerState, get_state
from traceyard.store.base import Page, TraceQuery, TraceSort

router = APIRouter(tags=["traces"])

State = Annotated[ServerState, Depends(get_state)]


#: ``key:value`` (the value may contain further colons).
MetadataPair = Annotated[str, StringConstraints(pattern=r"^[^:]+:")]


class Order(str, Enum):
    ASC = "asc"
    DESC = "desc"


def parse_metadata(pairs: list[str]) -> dict[str, str]:
    """``["env:prod", "k:a:b"]`` → ``{"env": "prod", "k": "a:b"}``; no ``:`` → 422."""
    parsed: dict[str, str] = {}
    for index, pair in enumerate(pairs):
        key, sep, value = pair.partition(":")
        if not sep or not key:
            raise ApiError(
                422,
                f"query parameter metadata: {pair!r} is not key:value",
                [ErrorDetail(loc=["query", "metadata", index], msg="expected key:value")],
            )
        parsed[key] = value
    return parsed


def trace_query(
    project: str | None = None,
    name: Annotated[str | None, Query(description="Substring of the trace name.")] = None,
    user_id: str | None = None,
    session_id: str | None = None,
    tags: Annotated[list[str], Query(description="The trace has all of these.")] = [],  # noqa: B006
    status: TraceStatus | None = None,
    level: Annotated[Level | None, Query(description="Some observation has this level.")] = None,
    start_after: Annotated[Moment | None, Query(description="Started at or after.")] = None,
    start_before: Annotated[Moment | None, Query(description="Started before.")] = None,
    min_latency_ms: Annotated[float | None, Query(ge=0, allow_inf_nan=False)] = None,
    max_latency_ms: Annotated[float | None, Query(ge=0, allow_inf_nan=False)] = None,
    min_cost: Annotated[float | None, Query(ge=0, allow_inf_nan=False)] = None,
    model: Annotated[str | None, Query(description="Some generation used this model.")] = None,
    prompt_name: Annotated[
        str | None, Query(description="Some observation used this managed prompt.")
    ] = None,
    prompt_version: Annotated[
        int | None, Query(ge=1, description="... in this version (needs prompt_name).")
    ] = None,
    metadata: Annotated[
        list[MetadataPair],
        Query(description="Trace metadata key:value (repeatable; all must match)."),
    ] = [],  # noqa: B006
    text: Annotated[
        str | None, Query(description="Free text over the name, input and output.")
    ] = None,
    sort: TraceSort = TraceSort.START_TIME,
    order: Order = Order.DESC,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
) -> TraceQuery:
    """The listing's query parameters as a :class:`TraceQuery`."""
    if prompt_version is not None and not prompt_name:
        raise ApiError(
            422,
            "query parameter prompt_version needs prompt_name",
            [ErrorDetail(loc=["query", "prompt_version"], msg="needs prompt_name")],
        )
    return TraceQuery(
        project=project,
        name=name or None,
        user_id=user_id,
        session_id=session_id,
        tags=tags,
        status=status,
        level=level,
        start_after=start_after,
        start_before=start_before,
        min_latency_ms=min_latency_ms,
        max_latency_ms=max_latency_ms,
        min_cost=min_cost,
        model=model,
        prompt_name=prompt_name or None,
        prompt_version=prompt_version,
        metadata=parse_metadata(metadata),
        text=text or None,
        sort=sort,
        descending=order is Order.DESC,
        limit=limit,
        cursor=cursor or None,
    )


@router.get("/api/traces", response_model=Page[Trace], summary="List traces")
def list_traces(state: State, query: Annotated[TraceQuery, Depends(trace_query)]) -> Response:
    """A page of traces, newest first by default; ``next_cursor`` is null on the last page."""
    return model_response(state.store.list_traces(query))


@router.get("/api/traces/{trace_id}", response_model=TraceDetail, summary="Get a trace")
def get_trace(state: State, trace_id: str) -> Response:
    """The trace's fields at the top level, plus ``observations`` (by start time) and
    ``scores``. Payloads are returned whole."""
    detail = state.store.get_trace(trace_id)
    if detail is None:
        raise ApiError(404, f"no trace with id {trace_id!r}")
    return model_response(detail)


@router.get(
    "/api/observations/{observation_id}", response_model=Observation, summary="Get an observation"
)
def get_observation(state: State, observation_id: str) -> Response:
    observation = state.store.get_observation(observation_id)
    if observation is None:
        raise ApiError(404, f"no observation with id {observation_id!r}")
    return model_response(observation)


class Deleted(BaseModel):
    deleted: int = Field(
        description="How many traces were deleted (with their observations, scores and payloads)."
    )


@router.delete("/api/traces/{trace_id}", response_model=Deleted, summary="Delete a trace")
async def delete_trace(state: State, trace_id: str) -> Deleted:
    deleted = await run_in_threadpool(state.store.delete_traces, [trace_id])
    if not deleted:
        raise ApiError(404, f"no trace with id {trace_id!r}")
    state.hub.publish([{"type": "trace", "action": "deleted", "trace_id": trace_id}])
    return Deleted(deleted=deleted)


class DeleteFilter(BaseModel):
    """Which traces to delete: the listing's filters (AND). An empty filter deletes nothing
    unless ``all`` is true, so a forgotten field cannot wipe the store."""

    model_config = ConfigDict(extra="forbid")

    project: str | None = None
    name: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    tags: list[str] = Field(default_factory=list)
    status: TraceStatus | None = None
    level: Level | None = None
    start_after: Moment | None = None
    start_before: Moment | None = None
    min_latency_ms: float | None = Field(None, ge=0, allow_inf_nan=False)
    max_latency_ms: float | None = Field(None, ge=0, allow_inf_nan=False)
    min_cost: float | None = Field(None, ge=0, allow_inf_nan=False)
    model: str | None = None
    prompt_name: str | None = None
    prompt_version: int | None = Field(None, ge=1)
    metadata: dict[str, str] = Field(default_factory=dict)
    text: str | None = None
    all: bool = Field(False, description="Required to delete with no filter at all.")


@router.post("/api/traces/delete", response_model=Deleted, summary="Delete traces by filter")
async def delete_by_filter(state: State, body: DeleteFilter) -> Deleted:
    filters: dict[str, Any] = body.model_dump(exclude={"all"}, exclude_defaults=True)
    if not filters and not body.all:
        raise ApiError(
            422,
            'refusing to delete every trace: give at least one filter, or "all": true',
            [ErrorDetail(loc=["body"], msg="no filter given")],
        )
    if body.prompt_version is not None and not body.prompt_name:
        raise ApiError(
            422,
            "prompt_version needs prompt_name",
            [ErrorDetail(loc=["body", "prompt_version"], msg="needs prompt_name")],
        )
    query = TraceQuery(**filters)
    deleted = await run_in_threadpool(state.store.delete_where, query)
    if deleted:
        change: dict[str, Any] = {"type": "traces", "action": "deleted", "count": deleted}
        if body.project is not None:
            change["project"] = body.project
        state.hub.publish([change])
    return Deleted(deleted=deleted)

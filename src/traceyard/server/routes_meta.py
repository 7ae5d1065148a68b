"""Health, stats, charts and Prometheus metrics: what the status page and monitoring read."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import PlainTextResponse

from traceyard._version import __version__
from traceyard.capture.tracer import TracerStats
from traceyard.pipeline.routing import describe
from traceyard.server import metrics
from traceyard.server.errors import ApiError, ErrorDetail
from traceyard.server.params import Moment
from traceyard.server.state import ServerState, get_state
from traceyard.store.base import TimeseriesGroup, TimeseriesPoint, TimeseriesQuery

router = APIRouter(tags=["status"])

State = Annotated[ServerState, Depends(get_state)]

#: Bucket widths the timeseries picks from when none is given (≤ ~200 buckets per range).
_NICE_INTERVALS_S = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400)
_MAX_BUCKETS = 5000


class Health(BaseModel):
    status: str = "ok"
    version: str
    backend: str = Field(description="The store this server reads: sqlite, postgres, memory.")
    tracing_mode: str = Field(
        description="local, local+forward, forward, remote or remote+forward."
    )
    storage: str = Field(description="Where traces are kept: local, remote or none.")
    server_mode: str = Field(
        description="embedded: inside the traced app; standalone: `traceyard serve`."
    )
    forwarding: list[str] = Field(description="Forwarding targets in force (no credentials).")
    data_dir: str | None
    uptime_s: float


@router.get("/api/health", response_model=Health, summary="Health (no auth)")
def health(state: State) -> Health:
    settings = state.settings
    routing = describe(settings)
    return Health(
        version=__version__,
        backend=state.store.backend,
        tracing_mode=routing["tracing_mode"],
        storage=routing["storage"],
        server_mode=state.mode,
        forwarding=routing["forwarding"],
        data_dir=str(settings.data_dir.resolve()) if settings.database_url is None else None,
        uptime_s=state.uptime_s(),
    )


class StoreStats(BaseModel):
    backend: str
    location: str
    traces: int
    observations: int
    scores: int
    size_bytes: int
    extra: dict[str, Any] = Field(default_factory=dict)


class LiveStats(BaseModel):
    clients: int
    clients_dropped: int
    changes_sent: int


class Stats(BaseModel):
    version: str
    server_mode: str = Field(description="embedded or standalone.")
    uptime_s: float
    tracer: TracerStats | None = Field(description="The writer's figures (null: no tracer here).")
    store: StoreStats
    live: LiveStats


@router.get("/api/stats", response_model=Stats, summary="Tracer, writer and store figures")
def stats(state: State) -> Stats:
    counts = state.store.counts()
    hub = state.hub
    return Stats(
        version=__version__,
        server_mode=state.mode,
        uptime_s=state.uptime_s(),
        tracer=state.tracer.stats() if state.tracer is not None else None,
        store=StoreStats(
            backend=counts.backend,
            location=counts.location,
            traces=counts.traces,
            observations=counts.observations,
            scores=counts.scores,
            size_bytes=counts.size_bytes,
            extra=counts.extra,
        ),
        live=LiveStats(
            clients=len(hub.clients),
            clients_dropped=hub.clients_dropped,
            changes_sent=hub.changes_sent,
        ),
    )


class Timeseries(BaseModel):
    start: datetime
    end: datetime
    interval_s: int
    group_by: TimeseriesGroup | None
    data: list[TimeseriesPoint]


@router.get("/api/metrics/timeseries", response_model=Timeseries, summary="Charts over time")
def timeseries(
    state: State,
    start: Annotated[Moment | None, Query(description="Default: end - 24 h.")] = None,
    end: Annotated[Moment | None, Query(description="Default: now.")] = None,
    interval_s: Annotated[
        int | None, Query(ge=1, le=366 * 86400, description="Default: ~100-200 buckets.")
    ] = None,
    group_by: TimeseriesGroup | None = None,
    project: str | None = None,
) -> Timeseries:
    """Per bucket: traces, observations, errors, latency p50/p95, tokens and cost of the
    traces that start in it; broken down by model or trace name when asked."""
    end = end if end is not None else datetime.now(timezone.utc)
    start = start if start is not None else end - timedelta(days=1)
    if start >= end:
        raise ApiError(
            422,
            "query parameter start: must be before end",
            [ErrorDetail(loc=["query", "start"], msg="must be before end")],
        )
    span_s = (end - start).total_seconds()
    if interval_s is None:
        interval_s = next(
            (i for i in _NICE_INTERVALS_S if span_s / i <= 200), _NICE_INTERVALS_S[-1]
        )
    if math.ceil(span_s / interval_s) > _MAX_BUCKETS:
        raise ApiError(
            422,
            f"query parameter interval_s: {interval_s} s gives more than {_MAX_BUCKETS} "
            "buckets over this range; choose a larger interval or a shorter range",
            [ErrorDetail(loc=["query", "interval_s"], msg="too many buckets")],
        )
    query = TimeseriesQuery(
        project=project, start=start, end=end, interval_s=interval_s, group_by=group_by
    )
    points = state.store.timeseries(query)
    return Timeseries(start=start, end=end, interval_s=interval_s, group_by=group_by, data=points)


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Prometheus metrics",
    responses={200: {"content": {metrics.CONTENT_TYPE: {"schema": {"type": "string"}}}}},
)
def prometheus_metrics(state: State, request: Request) -> PlainTextResponse:
    from traceyard.server.ingest_routes import ingest_stats

    return PlainTextResponse(
        metrics.render(state, ingest_stats(request.app)), media_type=metrics.CONTENT_TYPE
    )

"""Scores: read them, and add one (from the UI's annotation form or a script).

A new score goes through the tracer's queue when the server has one (one writer per
process, as for every other write), then waits for the writer's flush: 201 means it is
durable, 202 that it is queued but the flush did not finish in time.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from traceyard.capture.context import new_observation_id
from traceyard.model import Entity, Event, Score, ScoreDataType, ScoreSource, score_value_fields
from traceyard.server._json import model_response
from traceyard.server.errors import ApiError
from traceyard.server.state import ServerState, get_state
from traceyard.store.base import Page

if TYPE_CHECKING:
    from traceyard.capture.tracer import Tracer

router = APIRouter(tags=["scores"])

State = Annotated[ServerState, Depends(get_state)]

#: How long POST /api/scores waits for the writer before answering 202 instead of 201.
_FLUSH_TIMEOUT_S = 5.0


class ScoreCreate(BaseModel):
    """A score for a trace, an observation of it, or a session."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    value: bool | float | str = Field(
        description="A number (numeric), true/false (boolean) or a label (categorical)."
    )
    trace_id: str | None = Field(None, min_length=1, max_length=200)
    observation_id: str | None = Field(None, min_length=1, max_length=200)
    session_id: str | None = Field(None, min_length=1, max_length=200)
    data_type: ScoreDataType | None = Field(None, description="Default: from the value's type.")
    source: ScoreSource = ScoreSource.API
    comment: str | None = Field(None, max_length=10_000)
    metadata: dict[str, Any] | None = None
    id: str | None = Field(None, min_length=1, max_length=200, description="Default: generated.")
    project: str | None = Field(None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _consistent(self) -> ScoreCreate:
        if self.trace_id is None and self.session_id is None:
            raise ValueError("a score needs a trace_id or a session_id")
        if self.observation_id is not None and self.trace_id is None:
            raise ValueError("observation_id needs the trace_id of its trace")
        value, kind = self.value, self.data_type
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("value must be a finite number")
        if kind is ScoreDataType.NUMERIC and isinstance(value, (bool, str)):
            raise ValueError("a numeric score needs a number as value")
        if kind is ScoreDataType.BOOLEAN and not (isinstance(value, bool) or value in (0, 1)):
            raise ValueError("a boolean score needs true/false (or 0/1) as value")
        if kind is ScoreDataType.CATEGORICAL and not isinstance(value, str):
            raise ValueError("a categorical score needs a string as value")
        return self

    def fields(self) -> dict[str, Any]:
        """Canonical score fields, as :meth:`Tracer.score` builds them."""
        fields = score_value_fields(
            self.value, ScoreDataType.BOOLEAN if self.data_type is ScoreDataType.BOOLEAN else None
        )
        fields.update(
            name=self.name,
            observation_id=self.observation_id,
            session_id=self.session_id,
            source=self.source,
            comment=self.comment,
            metadata=self.metadata,
            timestamp=time.time_ns(),
        )
        return fields


class ScoreCreated(BaseModel):
    id: str
    durable: bool = Field(description="False: queued, not yet written when we answered.")


@router.post(
    "/api/scores",
    response_model=ScoreCreated,
    status_code=201,
    responses={202: {"model": ScoreCreated, "description": "Queued, not yet durable."}},
    summary="Add a score",
)
async def create_score(state: State, body: ScoreCreate) -> Response:
    score_id = body.id or new_observation_id()
    tracer = state.tracer
    if tracer is not None and not tracer.stopped and body.project in (None, tracer.project):
        durable = await run_in_threadpool(_score_via_tracer, tracer, body, score_id)
    else:
        project = body.project or state.settings.project
        event = Event(Entity.SCORE, score_id, body.trace_id or "", project, body.fields())
        await run_in_threadpool(state.store.write, [event])
        state.hub.publish(state.hub.changes_from_events([event]))
        durable = True
    return model_response(ScoreCreated(id=score_id, durable=durable), 201 if durable else 202)


def _score_via_tracer(tracer: Tracer, body: ScoreCreate, score_id: str) -> bool:
    """Queue the score on the tracer (one writer per process) and wait for it to be durable."""
    dropped_before = tracer.stats().events_dropped
    value = bool(body.value) if body.data_type is ScoreDataType.BOOLEAN else body.value
    tracer.score(
        body.name,
        value,
        trace_id=body.trace_id,
        observation_id=body.observation_id,
        session_id=body.session_id,
        data_type=body.data_type,
        source=body.source,
        comment=body.comment,
        metadata=body.metadata,
        score_id=score_id,
    )
    durable = tracer.flush(_FLUSH_TIMEOUT_S) == 0
    if tracer.stats().events_dropped > dropped_before:
        # The queue was full (the score may be among the dropped): never claim success.
        raise ApiError(503, "the write queue is full; retry the score in a moment")
    return durable


@router.get("/api/scores", response_model=Page[Score], summary="List scores")
def list_scores(
    state: State,
    trace_id: str | None = None,
    name: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: str | None = None,
) -> Response:
    """Scores, newest first; filter by trace and/or name."""
    return model_response(state.store.list_scores(trace_id, name, limit, cursor or None))

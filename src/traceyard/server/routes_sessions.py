"""Sessions (conversations, threads) and users: summaries over the traces that share them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from traceyard.model import SessionDetail, SessionSummary, UserSummary
from traceyard.server._json import model_response
from traceyard.server.errors import ApiError
from traceyard.server.state import ServerState, get_state
from traceyard.store.base import Page

router = APIRouter(tags=["sessions and users"])

State = Annotated[ServerState, Depends(get_state)]
Limit = Annotated[int, Query(ge=1, le=1000)]


@router.get("/api/sessions", response_model=Page[SessionSummary], summary="List sessions")
def list_sessions(
    state: State, project: str | None = None, limit: Limit = 50, cursor: str | None = None
) -> Response:
    """Sessions by their latest trace, newest first."""
    return model_response(state.store.list_sessions(project, limit, cursor or None))


@router.get("/api/sessions/{session_id}", response_model=SessionDetail, summary="Get a session")
def get_session(state: State, session_id: str, project: str | None = None) -> Response:
    """The session's traces in start order, with totals."""
    session = state.store.get_session(session_id, project)
    if session is None:
        raise ApiError(404, f"no session with id {session_id!r}")
    return model_response(session)


@router.get("/api/users", response_model=Page[UserSummary], summary="List users")
def list_users(
    state: State, project: str | None = None, limit: Limit = 50, cursor: str | None = None
) -> Response:
    """Per-user trace and session counts, tokens and cost, most recently seen first."""
    return model_response(state.store.list_users(project, limit, cursor or None))

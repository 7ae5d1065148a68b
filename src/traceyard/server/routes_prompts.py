"""Managed prompts for the UI: each prompt with its versions and how often they were used.

The Langfuse-compatible prompt API (``/api/public/v2/prompts``) is what SDKs call; these
routes are the UI's read side, guarded like the rest of ``/api``. The traces that used a
version are a listing: ``GET /api/traces?prompt_name=…&prompt_version=…``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from starlette.responses import Response

from traceyard.server._json import model_response
from traceyard.server.errors import ApiError
from traceyard.server.state import ServerState, get_state
from traceyard.store.base import Prompt, PromptUsage

router = APIRouter(tags=["prompts"])

State = Annotated[ServerState, Depends(get_state)]


class PromptSummary(BaseModel):
    """One prompt (a name in a project) as the prompt list shows it."""

    project: str
    name: str
    type: str = Field(description="Of the latest version: text or chat.")
    latest_version: int
    version_count: int
    labels: dict[str, int] = Field(description="Each label and the version that has it.")
    tags: list[str] = Field(default_factory=list)
    updated_at: datetime | None = Field(None, description="When the latest version was made.")
    observations: int = Field(0, description="Observations that name any of its versions.")
    traces: int = Field(0, description="Sum over versions of the traces that used each.")
    counts_capped: bool = Field(False, description="Some count stopped at the limit (≥).")


class PromptList(BaseModel):
    data: list[PromptSummary]


class PromptVersion(Prompt):
    """A version with its use: observations that name it and the traces they belong to."""

    observations: int = 0
    traces: int = 0
    counts_capped: bool = Field(False, description="The counts stopped at the limit (≥).")


class PromptDetail(BaseModel):
    project: str
    name: str
    versions: list[PromptVersion] = Field(description="Newest first.")
    unversioned: PromptUsage | None = Field(
        None, description="Observations that name the prompt without a version."
    )


def _usage_by_key(usage: list[PromptUsage]) -> dict[tuple[str, str, int | None], PromptUsage]:
    return {(u.project, u.name, u.version): u for u in usage}


@router.get("/api/prompts", response_model=PromptList, summary="List prompts")
def list_prompts(state: State, project: str | None = None) -> Response:
    """Every prompt (of ``project``, else of all projects) by project and name, with its
    latest version, labels and use."""
    prompts, usage = _read(state, project, None)
    by_name: dict[tuple[str, str], list[Prompt]] = {}
    for prompt in prompts:
        by_name.setdefault((prompt.project, prompt.name), []).append(prompt)
    used: dict[tuple[str, str], list[PromptUsage]] = {}
    for u in usage:
        used.setdefault((u.project, u.name), []).append(u)
    summaries = []
    for (proj, name), versions in by_name.items():
        latest = max(versions, key=lambda p: p.version)
        uses = used.get((proj, name), [])
        summaries.append(
            PromptSummary(
                project=proj,
                name=name,
                type=latest.type,
                latest_version=latest.version,
                version_count=len(versions),
                labels={label: p.version for p in versions for label in p.labels},
                tags=latest.tags,
                updated_at=latest.created_at,
                observations=sum(u.observations for u in uses),
                traces=sum(u.traces for u in uses),
                counts_capped=any(u.capped for u in uses),
            )
        )
    return model_response(PromptList(data=summaries))


@router.get("/api/prompts/{name:path}", response_model=PromptDetail, summary="Get a prompt")
def get_prompt(
    state: State,
    name: str,
    project: Annotated[str, Query(description="The prompt's project.")] = "default",
) -> Response:
    """The prompt's versions, newest first, each with its content, labels, config and use."""
    prompts, usage = _read(state, project, name)
    if not prompts:
        raise ApiError(404, f"no prompt {name!r} in project {project!r}")
    counts = _usage_by_key(usage)
    versions = []
    for prompt in sorted(prompts, key=lambda p: -p.version):
        u = counts.get((project, name, prompt.version))
        extra: dict[str, Any] = {}
        if u is not None:
            extra = {"observations": u.observations, "traces": u.traces, "counts_capped": u.capped}
        versions.append(PromptVersion(**prompt.model_dump(), **extra))
    detail = PromptDetail(
        project=project, name=name, versions=versions, unversioned=counts.get((project, name, None))
    )
    return model_response(detail)


#: Use is counted over at most this many observations per version (then shown as "≥"): a
#: prompt used a million times costs a page no more than one used ten thousand times.
USAGE_COUNT_LIMIT = 10_000


def _read(
    state: ServerState, project: str | None, name: str | None
) -> tuple[list[Prompt], list[PromptUsage]]:
    prompts = state.store.list_prompts(project, name)
    return prompts, state.store.prompt_usage(project, name, limit=USAGE_COUNT_LIMIT)

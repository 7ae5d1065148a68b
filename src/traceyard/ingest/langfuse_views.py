"""Canonical read models -> the JSON shapes of Langfuse's public API (camelCase).

Only the translation lives here; the routes decide what to fetch. Shapes follow Langfuse's Fern
definitions (``fern/apis/server/definition/*.yml``) as the SDKs parse them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from traceyard.model import Observation, Score, ScoreDataType, SessionSummary, Trace, TraceDetail
from traceyard.store.base import MediaRecord, Prompt

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def iso(value: datetime | None) -> str | None:
    """Langfuse's timestamps: ISO 8601 UTC with milliseconds and ``Z``."""
    if value is None:
        return None
    utc = value.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def meta(page: int, limit: int, total_items: int) -> dict[str, int]:
    total_pages = (total_items + limit - 1) // limit if limit else 0
    return {"page": page, "limit": limit, "totalItems": total_items, "totalPages": total_pages}


def project_view(project: str) -> dict[str, Any]:
    return {
        "id": project,
        "name": project,
        "metadata": {},
        "organization": {"id": "traceyard", "name": "traceyard"},
    }


def trace_view(trace: Trace, *, observation_ids: list[str] | None = None) -> dict[str, Any]:
    """A ``TraceWithDetails`` (list item): observations and scores as ids."""
    metadata = dict(trace.metadata)
    public = False
    langfuse_extra = metadata.get("langfuse")
    if isinstance(langfuse_extra, dict) and isinstance(langfuse_extra.get("public"), bool):
        public = langfuse_extra["public"]
    return {
        "id": trace.id,
        "timestamp": iso(trace.start_time or _EPOCH),
        "name": trace.name,
        "input": trace.input,
        "output": trace.output,
        "sessionId": trace.session_id,
        "release": trace.release,
        "version": trace.version,
        "userId": trace.user_id,
        "metadata": metadata,
        "tags": list(trace.tags),
        "public": public,
        "environment": trace.environment or "default",
        "htmlPath": f"/traces/{trace.id}",
        "latency": (trace.latency_ms or 0.0) / 1000.0,
        "totalCost": trace.total_cost,
        "observations": observation_ids or [],
        "scores": [score.id for score in trace.scores or []],
    }


def trace_detail_view(trace: TraceDetail, scores: list[Score]) -> dict[str, Any]:
    """A ``TraceWithFullDetails``: observations and scores in full."""
    view = trace_view(trace)
    view["observations"] = [observation_view(o, trace.environment) for o in trace.observations]
    view["scores"] = [score_view(s) for s in scores]
    return view


def observation_view(observation: Observation, environment: str | None = None) -> dict[str, Any]:
    """An ``ObservationsView``: usage in Langfuse's legacy and detailed forms, cost per bucket."""
    usage = observation.usage
    cost = observation.cost
    input_tokens = sum(usage.get(k, 0) for k in ("input", "cache_read", "cache_write"))
    output_tokens = sum(usage.get(k, 0) for k in ("output", "reasoning"))
    total = usage.get("total", input_tokens + output_tokens)
    return {
        "id": observation.id,
        "traceId": observation.trace_id,
        "type": observation.type.value.upper(),
        "name": observation.name,
        "startTime": iso(observation.start_time or _EPOCH),
        "endTime": iso(observation.end_time),
        "completionStartTime": iso(observation.completion_start_time),
        "model": observation.model,
        "modelParameters": observation.model_parameters or {},
        "input": observation.input,
        "output": observation.output,
        "version": None,
        "metadata": observation.metadata,
        "usage": {
            "input": int(input_tokens),
            "output": int(output_tokens),
            "total": int(total),
            "unit": "TOKENS",
        },
        "usageDetails": {key: int(value) for key, value in usage.items()},
        "costDetails": dict(cost),
        "level": observation.level.value,
        "statusMessage": observation.status_message,
        "parentObservationId": observation.parent_id,
        "promptId": _prompt_id(observation.prompt_name, observation.prompt_version),
        "promptName": observation.prompt_name,
        "promptVersion": observation.prompt_version,
        "modelId": None,
        "inputPrice": None,
        "outputPrice": None,
        "totalPrice": None,
        "calculatedInputCost": cost.get("input"),
        "calculatedOutputCost": cost.get("output"),
        "calculatedTotalCost": cost.get("total"),
        "latency": (observation.latency_ms / 1000.0) if observation.latency_ms else None,
        "timeToFirstToken": (observation.time_to_first_token_ms / 1000.0)
        if observation.time_to_first_token_ms
        else None,
        "environment": environment or "default",
    }


def score_view(score: Score) -> dict[str, Any]:
    data_type = score.data_type
    view: dict[str, Any] = {
        "id": score.id,
        "traceId": score.trace_id,
        "sessionId": score.session_id,
        "observationId": score.observation_id,
        "name": score.name,
        "source": score.source.value.upper(),
        "timestamp": iso(score.timestamp or _EPOCH),
        "createdAt": iso(score.timestamp or _EPOCH),
        "updatedAt": iso(score.timestamp or _EPOCH),
        "authorUserId": None,
        "comment": score.comment,
        "metadata": score.metadata,
        "configId": None,
        "queueId": None,
        "environment": "default",
        "dataType": data_type.value.upper(),
    }
    if data_type is ScoreDataType.CATEGORICAL:
        view["value"] = score.value
        view["stringValue"] = score.string_value or ""
    elif data_type is ScoreDataType.BOOLEAN:
        view["value"] = score.value if score.value is not None else 0.0
        view["stringValue"] = score.string_value or ("true" if score.value else "false")
    else:
        view["value"] = score.value if score.value is not None else 0.0
    return view


def session_view(session: SessionSummary) -> dict[str, Any]:
    return {
        "id": session.id,
        "createdAt": iso(session.start_time or _EPOCH),
        "projectId": session.project,
        "environment": "default",
    }


def prompt_view(prompt: Prompt) -> dict[str, Any]:
    return {
        "id": _prompt_id(prompt.name, prompt.version),
        "name": prompt.name,
        "version": prompt.version,
        "type": prompt.type,
        "prompt": prompt.prompt,
        "config": prompt.config or {},
        "labels": list(prompt.labels),
        "tags": list(prompt.tags),
        "commitMessage": prompt.commit_message,
        "resolutionGraph": None,
    }


def prompt_meta_view(versions: list[Prompt]) -> dict[str, Any]:
    """One ``PromptMeta`` of the prompt list: every version of one name."""
    newest = max(versions, key=lambda p: p.version)
    labels: list[str] = []
    tags: list[str] = []
    for prompt in versions:
        labels.extend(label for label in prompt.labels if label not in labels)
        tags.extend(tag for tag in prompt.tags if tag not in tags)
    updated = max((p.created_at for p in versions if p.created_at), default=None)
    return {
        "name": newest.name,
        "type": newest.type,
        "versions": sorted(p.version for p in versions),
        "labels": labels,
        "tags": tags,
        "lastUpdatedAt": iso(updated or _EPOCH),
        "lastConfig": newest.config or {},
    }


def media_view(media: MediaRecord, url: str, url_expiry: str) -> dict[str, Any]:
    return {
        "mediaId": media.id,
        "contentType": media.content_type,
        "contentLength": media.content_length,
        "uploadedAt": iso(media.uploaded_at or media.created_at or _EPOCH),
        "url": url,
        "urlExpiry": url_expiry,
    }


def _prompt_id(name: str | None, version: int | None) -> str | None:
    return f"{name}:{version}" if name and version is not None else None

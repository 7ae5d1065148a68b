"""Ingestion routes: OTLP/HTTP and the Langfuse public API, so existing clients send unchanged.

* ``POST /v1/traces`` — OTLP/HTTP (protobuf or JSON, gzip); the server's Bearer token guards
  it like the rest of the API (the app's AccessGuard middleware).
* ``/api/public/*`` — Langfuse-compatible, HTTP Basic with a key pair bound to a project
  (:mod:`traceyard.ingest.keys`); ``/api/public/health`` and ``/ready`` are open.

Every write is translated here, at the edge, into canonical events and admitted to the
pipeline all-or-nothing (:mod:`traceyard.ingest.sink`): a full queue gets 429/503 with
``Retry-After``, never a 2xx for data that would then be lost.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from secrets import token_bytes
from typing import Annotated, Any, TypeGuard

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from traceyard._version import __version__
from traceyard.errors import StoreError
from traceyard.ingest import langfuse_views as views
from traceyard.ingest import media as media_urls
from traceyard.ingest.keys import HOW_TO_CONFIGURE, KeyRing, load_key_ring
from traceyard.ingest.langfuse import (
    BatchError,
    EnvelopeLog,
    parse_score,
    translate_batch,
)
from traceyard.ingest.limits import (
    DEFAULT_MAX_BODY_BYTES,
    BadEncodingError,
    BodyTooLargeError,
    read_body,
)
from traceyard.ingest.otlp import (
    DecodedRequest,
    OtlpDecodeError,
    decode_request,
    encode_response,
    media_type,
    translate,
)
from traceyard.ingest.sink import Admission, IngestSink, IngestStats
from traceyard.model import Event, Observation, ObservationType, Trace
from traceyard.server.errors import error_body
from traceyard.server.ingest_workers import IngestWorkers, WorkersBusy, WorkersUnavailable
from traceyard.store.base import MediaRecord, Prompt, Store, TraceQuery


class _Refusal(Exception):
    """An error answered in both shapes (ours and Langfuse's top-level ``message``)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = error_body(status, message)
    body["message"] = message
    return JSONResponse(body, status_code=status, headers=headers)


class _IngestRoute(APIRoute):
    """Routes (and their dependencies) raise :class:`_Refusal`; this answers it. A router
    cannot register exception handlers on the app, a route class can wrap its handler."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except _Refusal as refusal:
                return _error(refusal.status, refusal.message, refusal.headers)

        return answer


router = APIRouter(tags=["ingestion"], route_class=_IngestRoute)

#: Media bytes accepted by the upload URL (the app's body limit for /api/public/ is 16 MiB).
MAX_MEDIA_BYTES = 16 << 20
#: Deepest page the Langfuse list routes walk to (page x limit); beyond it, narrow the filter.
_MAX_PAGE_DEPTH = 10_000


# ------------------------------------------------------------------------------ target


@dataclass
class IngestTarget:
    """What the ingestion routes need from the running app, built once per app."""

    store: Store
    project: str
    sink: IngestSink
    keys: KeyRing
    envelopes: EnvelopeLog = field(default_factory=EnvelopeLog)
    media_secret: bytes = field(default_factory=lambda: token_bytes(32))
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: Worker processes that decode, translate and write OTLP requests (``traceyard serve
    #: --ingest-workers``); None: this process does, through ``sink``.
    workers: IngestWorkers | None = None


_target_lock = threading.Lock()


def get_ingest_target(request: Request) -> IngestTarget:
    """FastAPI dependency: the app's ingestion target, built on first use.

    Reads the server's state (``app.state.traceyard``: store, settings, tracer) or, in a bare
    app, ``app.state.tracer``.
    """
    app_state = request.app.state
    target: IngestTarget | None = getattr(app_state, "traceyard_ingest", None)
    if target is not None:
        return target
    with _target_lock:
        target = getattr(app_state, "traceyard_ingest", None)
        if target is None:
            server_state = getattr(app_state, "traceyard", None)
            tracer = getattr(server_state, "tracer", None) or getattr(app_state, "tracer", None)
            source: Any = server_state if server_state is not None else tracer
            if source is None:
                raise RuntimeError("the app has neither app.state.traceyard nor app.state.tracer")
            store, settings = source.store, source.settings
            target = IngestTarget(
                store=store,
                project=str(settings.project),
                sink=IngestSink(tracer, store),
                keys=load_key_ring(settings),
                max_body_bytes=int(
                    getattr(settings, "ingest_max_body_bytes", None) or DEFAULT_MAX_BODY_BYTES
                ),
                workers=getattr(server_state, "ingest_workers", None),
            )
            app_state.traceyard_ingest = target
    return target


Target = Annotated[IngestTarget, Depends(get_ingest_target)]


def ingest_stats(app: Any) -> dict[str, int]:
    """The ingestion counters of ``app`` (accepted, refused busy, rejected invalid), for the
    server's /metrics and status page; zeros before the first ingestion request."""
    target: IngestTarget | None = getattr(app.state, "traceyard_ingest", None)
    if target is None:
        return IngestStats().as_dict()
    return target.sink.stats.as_dict()


def _project(request: Request, target: Target) -> str:
    """FastAPI dependency: Basic auth with a Langfuse key pair; the pair's project."""
    if target.keys.problem:
        raise _Refusal(
            500, f"the server's Langfuse key pairs are misconfigured: {target.keys.problem}"
        )
    if not target.keys:
        raise _Refusal(
            401,
            f"no Langfuse key pair is configured on this traceyard server: {HOW_TO_CONFIGURE}",
            {"WWW-Authenticate": 'Basic realm="traceyard"'},
        )
    pair = target.keys.authenticate(request.headers.get("authorization"))
    if pair is None:
        raise _Refusal(
            401,
            "invalid Langfuse credentials: send HTTP Basic public_key:secret_key of a pair "
            "configured in TRACEYARD_LANGFUSE_KEYS",
            {"WWW-Authenticate": 'Basic realm="traceyard"'},
        )
    return pair.project


Project = Annotated[str, Depends(_project)]


async def _body(request: Request, target: IngestTarget) -> bytes:
    try:
        return await read_body(
            request.stream(),
            content_length=request.headers.get("content-length"),
            content_encoding=request.headers.get("content-encoding"),
            limit=target.max_body_bytes,
        )
    except BodyTooLargeError as exc:
        raise _Refusal(413, str(exc)) from None
    except BadEncodingError as exc:
        raise _Refusal(415 if exc.unsupported else 400, str(exc)) from None


async def _json_body(request: Request, target: IngestTarget) -> Any:
    raw = await _body(request, target)
    try:
        return orjson.loads(raw)
    except ValueError as exc:
        raise _Refusal(400, f"request body is not valid JSON: {exc}") from None


def _busy(admission: Admission) -> _Refusal:
    return _Refusal(
        503 if "shutting down" in admission.reason or "store" in admission.reason else 429,
        f"not accepted, retry later: {admission.reason}",
        {"Retry-After": str(admission.retry_after_s)},
    )


async def _submit(target: IngestTarget, events: list[Event]) -> None:
    if target.sink.writes_directly:
        admission = await run_in_threadpool(target.sink.submit, events)
    else:
        admission = target.sink.submit(events)
    if not admission.accepted:
        raise _busy(admission)


# ------------------------------------------------------------------------------ OTLP


@router.post("/v1/traces", summary="OTLP/HTTP trace export (protobuf or JSON)")
async def otlp_traces(request: Request, target: Target) -> Response:
    project = request.headers.get("x-traceyard-project") or target.project
    return await _otlp(request, target, project)


@router.post("/api/public/otel/v1/traces", summary="OTLP/HTTP trace export, Langfuse auth")
async def langfuse_otlp_traces(request: Request, target: Target, project: Project) -> Response:
    return await _otlp(request, target, project)


async def _otlp(request: Request, target: IngestTarget, project: str) -> Response:
    try:
        kind = media_type(request.headers.get("content-type"))
    except OtlpDecodeError as exc:
        raise _Refusal(415, str(exc)) from None
    body = await _body(request, target)
    try:
        if target.workers is not None:
            rejected, reasons = await _otlp_in_worker(target, target.workers, body, kind, project)
        else:
            rejected, reasons = await _otlp_here(target, body, kind, project)
    except OtlpDecodeError as exc:
        raise _Refusal(400, str(exc)) from None
    return Response(encode_response(kind, rejected, "; ".join(reasons)), media_type=kind)


async def _otlp_here(
    target: IngestTarget, body: bytes, kind: str, project: str
) -> tuple[int, list[str]]:
    # Decoding and translating take ~25 µs of CPU a span (bench/otlp_translate.py): in a
    # worker thread, so the event loop keeps reading the other connections' bodies
    # meanwhile (socket reads release the GIL).
    decoded, events = await run_in_threadpool(_decode_and_translate, body, kind, project)
    _check_spans(target, len(decoded.spans), decoded.rejected, decoded.reasons)
    await _submit(target, events)
    return decoded.rejected, decoded.reasons


async def _otlp_in_worker(
    target: IngestTarget, workers: IngestWorkers, body: bytes, kind: str, project: str
) -> tuple[int, list[str]]:
    """The request decoded, translated and committed by a worker process: 2xx is durable."""
    target.sink.count_request()
    try:
        outcome = await workers.otlp(body, kind, project)
    except WorkersBusy as exc:
        raise _busy(target.sink.refuse(0, str(exc))) from None
    except (WorkersUnavailable, StoreError) as exc:
        raise _busy(target.sink.refuse(0, f"the store is unavailable: {exc}")) from None
    _check_spans(target, outcome.spans, outcome.rejected, outcome.reasons)
    target.sink.count_written(outcome.events)
    return outcome.rejected, outcome.reasons


def _check_spans(target: IngestTarget, spans: int, rejected: int, reasons: list[str]) -> None:
    """Count the rejected spans; a request with nothing but rejected spans is a 400."""
    target.sink.count_invalid(rejected)
    if rejected and not spans:
        raise _Refusal(400, "no valid span in the request: " + "; ".join(reasons))


def _decode_and_translate(
    body: bytes, kind: str, project: str
) -> tuple[DecodedRequest, list[Event]]:
    decoded = decode_request(body, kind)
    return decoded, translate(decoded.spans, project)


# ------------------------------------------------------------------------------ Langfuse


@router.get("/api/public/health", summary="Langfuse-compatible health check")
async def health() -> JSONResponse:
    return JSONResponse({"status": "OK", "version": __version__})


@router.get("/api/public/ready", summary="Langfuse-compatible readiness check")
async def ready(target: Target) -> JSONResponse:
    tracer = target.sink.tracer
    if tracer is not None and tracer.stopped:
        return JSONResponse({"status": "shutting down", "version": __version__}, 503)
    return JSONResponse({"status": "OK", "version": __version__})


@router.get("/api/public/projects", summary="The project of the key pair (SDK auth check)")
async def projects(request: Request, target: Target, project: Project) -> Response:
    return JSONResponse({"data": [views.project_view(project)]})


@router.post("/api/public/ingestion", summary="Langfuse batch ingestion (always 207)")
async def ingestion(request: Request, target: Target, project: Project) -> Response:
    payload = await _json_body(request, target)
    try:
        result = translate_batch(payload, project, target.envelopes)
    except BatchError as exc:
        raise _Refusal(400, str(exc)) from None
    target.sink.count_invalid(len(result.errors))
    await _submit(target, result.events)
    target.envelopes.remember(project, result.pending)
    return JSONResponse(result.response(), status_code=207)


@router.post("/api/public/scores", summary="Create scores: one object (200) or an array")
async def create_scores(request: Request, target: Target, project: Project) -> Response:
    payload = await _json_body(request, target)
    if isinstance(payload, dict):
        try:
            event = parse_score(payload, project)
        except ValueError as exc:
            raise _Refusal(400, f"invalid score: {exc}") from None
        await _submit(target, [event])
        return JSONResponse({"id": event.id})
    if not isinstance(payload, list):
        raise _Refusal(400, "body must be a score object or an array of score objects")
    events: list[Event] = []
    errors: list[dict[str, str]] = []
    for index, item in enumerate(payload):
        try:
            events.append(parse_score(item, project))
        except ValueError as exc:
            errors.append({"message": f"score {index}: {exc}"})
    target.sink.count_invalid(len(errors))
    await _submit(target, events)
    if errors:
        body = {"accepted": len(events), "rejected": len(errors), "errors": errors}
        return JSONResponse(body, status_code=207)
    return JSONResponse({"message": "Accepted"}, status_code=202)


# ------------------------------------------------------------------------------ prompts


@router.get("/api/public/v2/prompts", summary="List prompts (one entry per name)")
async def list_prompts(
    request: Request,
    target: Target,
    project: Project,
    name: str | None = None,
    label: str | None = None,
    page: Annotated[int, Query(ge=1)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> Response:
    prompts = await run_in_threadpool(target.store.list_prompts, project, name)
    by_name: dict[str, list[Prompt]] = {}
    for prompt in prompts:
        by_name.setdefault(prompt.name, []).append(prompt)
    metas = [
        views.prompt_meta_view(versions)
        for versions in by_name.values()
        if label is None or any(label in p.labels for p in versions)
    ]
    metas.sort(key=lambda m: str(m["name"]))
    start = (page - 1) * limit
    return JSONResponse(
        {"data": metas[start : start + limit], "meta": views.meta(page, limit, len(metas))}
    )


@router.get("/api/public/v2/prompts/{name:path}", summary="A prompt by version or label")
async def get_prompt(
    request: Request,
    target: Target,
    project: Project,
    name: str,
    version: int | None = None,
    label: str | None = None,
) -> Response:
    prompt = await run_in_threadpool(
        lambda: target.store.get_prompt(project, name, version=version, label=label)
    )
    if prompt is None:
        which = (
            f"version {version}"
            if version is not None
            else f"label {label!r}"
            if label
            else "label 'production'"
        )
        raise _Refusal(404, f"prompt {name!r} has no {which} in project {project!r}")
    return JSONResponse(views.prompt_view(prompt))


@router.post("/api/public/v2/prompts", summary="Create a new version of a prompt")
async def create_prompt(request: Request, target: Target, project: Project) -> Response:
    body = await _json_body(request, target)
    if not isinstance(body, dict):
        raise _Refusal(400, "body must be a prompt object {name, prompt, type, ...}")
    name, prompt, kind = body.get("name"), body.get("prompt"), body.get("type")
    if not isinstance(name, str) or not name.strip():
        raise _Refusal(400, "prompt 'name' must be a non-empty string")
    kind = kind or ("chat" if isinstance(prompt, list) else "text")
    problem = _prompt_problem(kind, prompt)
    if problem:
        raise _Refusal(400, problem)
    config = body.get("config") or {}
    labels = body.get("labels") or []
    tags = body.get("tags") or []
    if not isinstance(config, dict):
        raise _Refusal(400, "prompt 'config' must be an object")
    if not _str_list(labels) or not _str_list(tags):
        raise _Refusal(400, "prompt 'labels' and 'tags' must be lists of strings")
    commit = body.get("commitMessage")
    saved = await run_in_threadpool(
        lambda: target.store.save_prompt(
            project,
            name,
            prompt,
            type=kind,
            config=config,
            labels=labels,
            tags=tags,
            commit_message=commit if isinstance(commit, str) else None,
        )
    )
    return JSONResponse(views.prompt_view(saved))


@router.patch(
    "/api/public/v2/prompts/{name:path}/versions/{version}", summary="Set a version's labels"
)
async def update_prompt_labels(
    request: Request, target: Target, project: Project, name: str, version: int
) -> Response:
    body = await _json_body(request, target)
    labels = body.get("newLabels") if isinstance(body, dict) else None
    if not _str_list(labels):
        raise _Refusal(400, 'body must be {"newLabels": ["label", ...]}')
    updated = await run_in_threadpool(
        target.store.set_prompt_labels, project, name, version, labels
    )
    if updated is None:
        raise _Refusal(404, f"prompt {name!r} has no version {version}")
    return JSONResponse(views.prompt_view(updated))


def _prompt_problem(kind: Any, prompt: Any) -> str | None:
    if kind == "text":
        return None if isinstance(prompt, str) else "a text prompt's 'prompt' must be a string"
    if kind == "chat":
        if not isinstance(prompt, list):
            return "a chat prompt's 'prompt' must be a list of messages"
        for index, message in enumerate(prompt):
            if not isinstance(message, dict):
                return f"chat message {index} must be an object"
            if message.get("type") == "placeholder":
                if not isinstance(message.get("name"), str):
                    return f"placeholder {index} needs a 'name'"
            elif not isinstance(message.get("role"), str) or "content" not in message:
                return f"chat message {index} needs 'role' and 'content'"
        return None
    return f"prompt 'type' must be 'text' or 'chat', not {kind!r}"


def _str_list(value: Any) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


# ------------------------------------------------------------------------------ media


@router.post("/api/public/media", summary="Start a media upload (returns the upload URL)")
async def media_upload_url(request: Request, target: Target, project: Project) -> Response:
    body = await _json_body(request, target)
    if not isinstance(body, dict):
        raise _Refusal(400, "body must be an object {traceId, contentType, sha256Hash, ...}")
    sha = body.get("sha256Hash")
    content_type = body.get("contentType")
    length = body.get("contentLength")
    if not isinstance(sha, str) or not media_urls.valid_sha256_b64(sha):
        raise _Refusal(400, "'sha256Hash' must be the base64 SHA-256 of the content")
    if not isinstance(content_type, str) or "/" not in content_type:
        raise _Refusal(400, "'contentType' must be a MIME type such as image/png")
    if not isinstance(length, int) or isinstance(length, bool) or length < 0:
        raise _Refusal(400, "'contentLength' must be a non-negative integer")
    if length > MAX_MEDIA_BYTES:
        raise _Refusal(413, f"media above {MAX_MEDIA_BYTES} bytes is not accepted")
    media_id = media_urls.media_id(sha)
    existing = await run_in_threadpool(target.store.get_media, media_id)
    if existing is not None and existing.data is not None:
        return JSONResponse({"mediaId": media_id, "uploadUrl": None})
    record = MediaRecord(
        id=media_id,
        project=project,
        trace_id=_opt_str(body.get("traceId")),
        observation_id=_opt_str(body.get("observationId")),
        field=_opt_str(body.get("field")),
        content_type=content_type,
        content_length=length,
        sha256=sha,
        created_at=datetime.now(timezone.utc),
    )
    await run_in_threadpool(target.store.save_media, record)
    query = media_urls.signed_query(target.media_secret, "upload", project, media_id)
    url = str(request.url_for("media_upload", media_id=media_id)) + "?" + query
    return JSONResponse({"mediaId": media_id, "uploadUrl": url})


@router.put("/api/public/media/{media_id}/upload", name="media_upload", summary="Upload bytes")
async def media_upload(
    request: Request,
    target: Target,
    media_id: str,
    project: str,
    expires: int,
    signature: str,
) -> Response:
    problem = media_urls.check_signature(
        target.media_secret, "upload", project, media_id, expires, signature
    )
    if problem:
        raise _Refusal(403, problem)
    record = await run_in_threadpool(target.store.get_media, media_id)
    if record is None or record.project != project:
        raise _Refusal(404, f"no pending media {media_id!r}; POST /api/public/media first")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > record.content_length:
            raise _Refusal(400, f"more than the announced {record.content_length} bytes")
    if media_urls.sha256_b64(bytes(data)) != record.sha256:
        raise _Refusal(400, "the uploaded bytes do not match the announced sha256Hash")
    stored = record.model_copy(
        update={"data": bytes(data), "uploaded_at": datetime.now(timezone.utc)}
    )
    await run_in_threadpool(target.store.save_media, stored)
    return Response(status_code=200)


@router.patch("/api/public/media/{media_id}", summary="Report the upload's outcome")
async def media_patch(
    request: Request, target: Target, project: Project, media_id: str
) -> Response:
    await _json_body(request, target)  # uploadedAt, uploadHttpStatus: nothing to keep
    record = await run_in_threadpool(target.store.get_media, media_id)
    if record is None or record.project != project:
        raise _Refusal(404, f"no media {media_id!r}")
    return Response(status_code=204)


@router.get("/api/public/media/{media_id}", summary="Media metadata and a download URL")
async def media_get(request: Request, target: Target, project: Project, media_id: str) -> Response:
    record = await run_in_threadpool(target.store.get_media, media_id)
    if record is None or record.project != project or record.data is None:
        raise _Refusal(404, f"no uploaded media {media_id!r}")
    query = media_urls.signed_query(target.media_secret, "download", project, media_id)
    url = str(request.url_for("media_download", media_id=media_id)) + "?" + query
    expiry = views.iso(datetime.fromtimestamp(time.time() + media_urls.URL_TTL_S, tz=timezone.utc))
    return JSONResponse(views.media_view(record, url, expiry or ""))


@router.get("/api/public/media/{media_id}/download", name="media_download", summary="Media bytes")
async def media_download(
    target: Target, media_id: str, project: str, expires: int, signature: str
) -> Response:
    problem = media_urls.check_signature(
        target.media_secret, "download", project, media_id, expires, signature
    )
    if problem:
        raise _Refusal(403, problem)
    record = await run_in_threadpool(target.store.get_media, media_id)
    if record is None or record.data is None or record.project != project:
        raise _Refusal(404, f"no uploaded media {media_id!r}")
    return Response(record.data, media_type=record.content_type)


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# ------------------------------------------------------------------------------ reads


@router.get("/api/public/traces", summary="List traces (Langfuse shape)")
async def list_traces(
    request: Request,
    target: Target,
    project: Project,
    page: Annotated[int, Query(ge=1)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    user_id: Annotated[str | None, Query(alias="userId")] = None,
    session_id: Annotated[str | None, Query(alias="sessionId")] = None,
    name: str | None = None,
    tags: Annotated[list[str] | None, Query()] = None,
    from_timestamp: Annotated[datetime | None, Query(alias="fromTimestamp")] = None,
    to_timestamp: Annotated[datetime | None, Query(alias="toTimestamp")] = None,
    order_by: Annotated[str | None, Query(alias="orderBy")] = None,
) -> Response:
    query = TraceQuery(
        project=project,
        user_id=user_id,
        session_id=session_id,
        name=name,
        tags=tags or [],
        start_after=from_timestamp,
        start_before=to_timestamp,
        descending=not (order_by or "").endswith(".asc"),
    )
    items, more = await run_in_threadpool(_trace_page, target.store, query, page, limit)
    data = [views.trace_view(trace) for trace in items]
    total = (page - 1) * limit + len(data) + (1 if more else 0)
    return JSONResponse({"data": data, "meta": views.meta(page, limit, total)})


@router.get("/api/public/traces/{trace_id}", summary="One trace with observations and scores")
async def get_trace(request: Request, target: Target, project: Project, trace_id: str) -> Response:
    trace = await run_in_threadpool(target.store.get_trace, trace_id)
    if trace is None or trace.project != project:
        raise _Refusal(404, f"no trace {trace_id!r} in project {project!r}")
    scores = await run_in_threadpool(
        lambda: target.store.list_scores(trace_id=trace_id, limit=1000).data
    )
    return JSONResponse(views.trace_detail_view(trace, scores))


@router.delete("/api/public/traces/{trace_id}", summary="Delete one trace")
async def delete_trace(
    request: Request, target: Target, project: Project, trace_id: str
) -> Response:
    trace = await run_in_threadpool(target.store.get_trace, trace_id)
    if trace is None or trace.project != project:
        raise _Refusal(404, f"no trace {trace_id!r} in project {project!r}")
    await run_in_threadpool(target.store.delete_traces, [trace_id])
    return JSONResponse({"message": "Trace deleted successfully"})


@router.delete("/api/public/traces", summary="Delete several traces")
async def delete_traces(request: Request, target: Target, project: Project) -> Response:
    body = await _json_body(request, target)
    ids = body.get("traceIds") if isinstance(body, dict) else None
    if not _str_list(ids):
        raise _Refusal(400, 'body must be {"traceIds": ["..."]}')

    def delete_own() -> int:
        own = [
            tid
            for tid in ids
            if (t := target.store.get_trace(tid)) is not None and t.project == project
        ]
        return target.store.delete_traces(own)

    await run_in_threadpool(delete_own)
    return JSONResponse({"message": "Traces deleted successfully"})


@router.get("/api/public/sessions", summary="List sessions (Langfuse shape)")
async def list_sessions(
    request: Request,
    target: Target,
    project: Project,
    page: Annotated[int, Query(ge=1)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> Response:

    def fetch() -> tuple[list[Any], bool]:
        return _walk_pages(
            lambda cursor, size: target.store.list_sessions(project, size, cursor),
            page,
            limit,
        )

    items, more = await run_in_threadpool(fetch)
    data = [views.session_view(session) for session in items]
    total = (page - 1) * limit + len(data) + (1 if more else 0)
    return JSONResponse({"data": data, "meta": views.meta(page, limit, total)})


@router.get("/api/public/sessions/{session_id}", summary="One session with its traces")
async def get_session(
    request: Request, target: Target, project: Project, session_id: str
) -> Response:
    session = await run_in_threadpool(target.store.get_session, session_id, project)
    if session is None:
        raise _Refusal(404, f"no session {session_id!r} in project {project!r}")
    view = views.session_view(session)
    view["traces"] = [views.trace_view(trace) for trace in session.traces]
    return JSONResponse(view)


@router.get("/api/public/observations", summary="List observations (Langfuse shape)")
async def list_observations(
    request: Request,
    target: Target,
    project: Project,
    page: Annotated[int, Query(ge=1)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    trace_id: Annotated[str | None, Query(alias="traceId")] = None,
    name: str | None = None,
    type: str | None = None,
    user_id: Annotated[str | None, Query(alias="userId")] = None,
    parent_observation_id: Annotated[str | None, Query(alias="parentObservationId")] = None,
) -> Response:
    wanted_type = type.lower() if type else None
    if wanted_type is not None and wanted_type not in {t.value for t in ObservationType}:
        raise _Refusal(400, f"unknown observation type {type!r}")

    def keep(observation: Observation) -> bool:
        return (
            (name is None or observation.name == name)
            and (wanted_type is None or observation.type.value == wanted_type)
            and (parent_observation_id is None or observation.parent_id == parent_observation_id)
        )

    def fetch() -> tuple[list[tuple[Observation, str | None]], bool]:
        wanted = page * limit + 1
        found: list[tuple[Observation, str | None]] = []
        for trace in _traces_for(target.store, project, trace_id, user_id):
            detail = target.store.get_trace(trace.id)
            if detail is None:
                continue
            found.extend((o, detail.environment) for o in detail.observations if keep(o))
            if len(found) >= wanted:
                break
        start = (page - 1) * limit
        return found[start : start + limit], len(found) > start + limit

    items, more = await run_in_threadpool(fetch)
    data = [views.observation_view(obs, env) for obs, env in items]
    total = (page - 1) * limit + len(data) + (1 if more else 0)
    return JSONResponse({"data": data, "meta": views.meta(page, limit, total)})


def _traces_for(
    store: Store, project: str, trace_id: str | None, user_id: str | None
) -> Iterator[Trace]:
    if trace_id is not None:
        trace = store.get_trace(trace_id)
        if trace is not None and trace.project == project:
            yield trace
        return
    cursor: str | None = None
    walked = 0
    while walked < _MAX_PAGE_DEPTH:
        page = store.list_traces(
            TraceQuery(project=project, user_id=user_id, limit=100, cursor=cursor)
        )
        yield from page.data
        walked += len(page.data)
        cursor = page.next_cursor
        if cursor is None:
            return


def _trace_page(store: Store, query: TraceQuery, page: int, limit: int) -> tuple[list[Any], bool]:
    return _walk_pages(
        lambda cursor, size: store.list_traces(
            query.model_copy(update={"cursor": cursor, "limit": size})
        ),
        page,
        limit,
    )


def _walk_pages(fetch: Any, page: int, limit: int) -> tuple[list[Any], bool]:
    """Langfuse pages are numbered, our store pages by cursor: walk cursors to page ``page``.

    Returns the page's items and whether more follow.
    """
    if page * limit > _MAX_PAGE_DEPTH:
        raise _Refusal(
            400, f"page x limit may be at most {_MAX_PAGE_DEPTH}; narrow the filters instead"
        )
    cursor: str | None = None
    for _ in range(page - 1):
        skipped = fetch(cursor, limit)
        cursor = skipped.next_cursor
        if cursor is None:
            return [], False
    result = fetch(cursor, limit)
    return list(result.data), result.next_cursor is not None

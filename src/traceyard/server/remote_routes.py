"""``POST /api/ingest``: the batches of traceyard clients in remote mode.

The body is canonical events (:mod:`traceyard.remote.wire`), JSON, optionally gzip, guarded by
the server's Bearer token like the rest of the API. They are admitted to the server's pipeline
through the same all-or-nothing admission as the OTLP and Langfuse routes
(:class:`~traceyard.ingest.sink.IngestSink`): a full queue gets 429 with ``Retry-After`` (503
while shutting down), never a 2xx for events that would then be lost.

Answers: 200 ``{"accepted": n, "rejected": 0}``; 207 when some events were invalid (the valid
ones are kept, the others listed by index and id); 400 when none was.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from traceyard.ingest.limits import BadEncodingError, BodyTooLargeError, read_body
from traceyard.remote.wire import BodyError, decode_body, stamp_source
from traceyard.server.errors import error_body, error_response
from traceyard.server.ingest_routes import IngestTarget, get_ingest_target

router = APIRouter(tags=["remote"])

#: Decompressed bytes per request. Clients send at most 1 MB uncompressed
#: (:data:`traceyard.remote.sender.DEFAULT_MAX_REQUEST_BYTES`); the margin is for other limits.
MAX_DECODED_BYTES = 16 << 20
#: Bodies this large are decoded off the event loop, so health checks stay quick meanwhile.
_THREAD_DECODE_BYTES = 256 << 10


class RejectedEvent(BaseModel):
    index: int
    id: str | None = None
    error: str


class IngestResult(BaseModel):
    accepted: int = Field(description="Events queued for the store.")
    rejected: int = Field(0, description="Invalid events, refused (listed in errors).")
    errors: list[RejectedEvent] = Field(default_factory=list)


#: The body, for the OpenAPI document (the route reads raw bytes: gzip and streaming caps).
_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["events"],
                "properties": {
                    "source": {
                        "type": "object",
                        "description": "The sending host and process (host, pid, sdk).",
                    },
                    "events": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["entity", "id", "fields"],
                            "properties": {
                                "entity": {
                                    "type": "string",
                                    "enum": ["trace", "observation", "score"],
                                },
                                "id": {"type": "string", "minLength": 1},
                                "trace_id": {"type": "string"},
                                "project": {"type": "string", "minLength": 1, "maxLength": 200},
                                "fields": {"type": "object"},
                            },
                        },
                    },
                },
            }
        }
    },
}


@router.post(
    "/api/ingest",
    response_model=IngestResult,
    summary="Batches of canonical events from traceyard clients in remote mode",
    responses={207: {"model": IngestResult, "description": "Some events were refused"}},
    openapi_extra={"requestBody": _REQUEST_BODY},
)
async def ingest(
    request: Request, target: Annotated[IngestTarget, Depends(get_ingest_target)]
) -> Response:
    try:
        raw = await read_body(
            request.stream(),
            content_length=request.headers.get("content-length"),
            content_encoding=request.headers.get("content-encoding"),
            limit=MAX_DECODED_BYTES,
        )
    except BodyTooLargeError as exc:
        return error_response(413, str(exc))
    except BadEncodingError as exc:
        return error_response(415 if exc.unsupported else 400, str(exc))
    try:
        if len(raw) > _THREAD_DECODE_BYTES:
            batch = await run_in_threadpool(decode_body, raw)
        else:
            batch = decode_body(raw)
    except BodyError as exc:
        return error_response(400, str(exc))
    target.sink.count_invalid(batch.rejected)
    result = IngestResult(
        accepted=len(batch.events),
        rejected=batch.rejected,
        errors=[RejectedEvent(**error) for error in batch.errors],
    )
    if not batch.events:
        if not batch.rejected:
            return JSONResponse(result.model_dump())
        # Our one error shape, plus the per-event list so the client sees what to fix.
        payload = error_body(400, f"no valid event in the batch: {batch.errors[0]['error']}")
        payload.update(result.model_dump())
        return JSONResponse(payload, status_code=400)
    stamp_source(batch.events, batch.host, batch.pid)
    if target.sink.tracer is None:
        admission = await run_in_threadpool(target.sink.submit, batch.events)
    else:
        admission = target.sink.submit(batch.events)
    if not admission.accepted:
        status = 503 if "shutting down" in admission.reason or "store" in admission.reason else 429
        return error_response(
            status,
            f"not accepted, retry later: {admission.reason}",
            headers={"Retry-After": str(admission.retry_after_s)},
        )
    return JSONResponse(result.model_dump(), status_code=207 if batch.rejected else 200)

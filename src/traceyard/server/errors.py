"""One JSON error shape for every error the server answers, whatever raised it.

``{"error": {"status": 404, "code": "not_found", "message": "...", "details": [...]}}`` — the
same for a missing trace, a bad query parameter, a refused Host header, a body too large and
an internal error, so clients (the UI, scripts) handle errors one way.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from traceyard._internal import guard
from traceyard.errors import StoreClosedError, StoreError, StoreUnavailableError

logger = logging.getLogger("traceyard.server")

#: HTTP status → the machine-readable ``code`` of the error shape.
_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


class ErrorDetail(BaseModel):
    loc: list[str | int] = Field(default_factory=list, description="Where: e.g. [query, limit].")
    msg: str
    type: str | None = None


class ErrorInfo(BaseModel):
    status: int
    code: str
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorBody(BaseModel):
    """What every error response carries."""

    error: ErrorInfo


class ApiError(Exception):
    """Raised by route code for an error with a clear message (404, 400, 409 ...)."""

    def __init__(self, status: int, message: str, details: Sequence[ErrorDetail] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = list(details)


def error_body(
    status: int, message: str, details: Sequence[ErrorDetail] = (), code: str | None = None
) -> dict[str, Any]:
    info = ErrorInfo(
        status=status,
        code=code or _CODES.get(status, "error"),
        message=message,
        details=list(details),
    )
    return ErrorBody(error=info).model_dump(mode="json")


def error_response(
    status: int,
    message: str,
    details: Sequence[ErrorDetail] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(status, message, details), status_code=status, headers=headers)


def validation_details(errors: Sequence[Any]) -> list[ErrorDetail]:
    """Pydantic/FastAPI error dicts → details, keeping only what helps the caller."""
    details = []
    for err in errors:
        loc = [part if isinstance(part, int) else str(part) for part in err.get("loc", ())]
        details.append(ErrorDetail(loc=loc, msg=str(err.get("msg", "")), type=err.get("type")))
    return details


def validation_message(details: Sequence[ErrorDetail]) -> str:
    """One line naming what is wrong, e.g. ``query parameter limit: Input should be ≤ 1000``."""
    parts = []
    for detail in details[:5]:
        where = [str(p) for p in detail.loc]
        if where and where[0] in ("query", "path", "header", "body", "cookie"):
            kind = {"query": "query parameter", "path": "path parameter"}.get(where[0], where[0])
            label = f"{kind} {'.'.join(where[1:])}" if len(where) > 1 else kind
        else:
            label = ".".join(where) or "request"
        parts.append(f"{label}: {detail.msg}")
    more = f" (and {len(details) - 5} more)" if len(details) > 5 else ""
    return "; ".join(parts) + more if parts else "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Route every error path of FastAPI/Starlette through :func:`error_body`."""

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route {request.url.path}"
        elif exc.status_code == 405 and message == "Method Not Allowed":
            message = f"method {request.method} is not allowed on {request.url.path}"
        return error_response(exc.status_code, message, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = validation_details(exc.errors())
        return error_response(422, validation_message(details), details)

    @app.exception_handler(ValidationError)
    async def _model_error(request: Request, exc: ValidationError) -> JSONResponse:
        # A query model built in route code (TraceQuery, TimeseriesQuery) refused the values.
        details = validation_details(exc.errors())
        return error_response(422, validation_message(details), details)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.details)

    @app.exception_handler(StoreError)
    async def _store_error(request: Request, exc: StoreError) -> JSONResponse:
        if isinstance(exc, (StoreUnavailableError, StoreClosedError)):
            return error_response(503, f"the store is unavailable: {exc}")
        # The store raises plain StoreError for a bad query (e.g. a malformed cursor).
        return error_response(400, str(exc))

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
        guard.report(f"server {request.method} {request.url.path}", exc)
        return error_response(500, "internal server error (details are in the server log)")

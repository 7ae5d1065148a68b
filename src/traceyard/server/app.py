"""The FastAPI app: API routes, the live stream, ingestion (when present) and the UI files.

``create_app(state)`` is used by the embedded server, ``traceyard serve`` and the tests
(in-process through ``httpx.ASGITransport``). The UI is served at the root after the API, with
relative asset URLs, so the whole thing works under a reverse-proxy path prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from traceyard._version import __version__
from traceyard.server import (
    remote_routes,
    routes_live,
    routes_meta,
    routes_prompts,
    routes_scores,
    routes_sessions,
    routes_traces,
)
from traceyard.server.auth import AccessGuard
from traceyard.server.errors import ErrorBody, install_error_handlers
from traceyard.server.ingest_workers import IngestWorkers
from traceyard.server.limits import BodyLimit
from traceyard.server.live import StorePoller
from traceyard.server.retention import retention_policy, run_retention
from traceyard.server.state import ServerCounters, ServerState
from traceyard.ui import STATIC_DIR

logger = logging.getLogger("traceyard.server")

UI_DIR: Path = STATIC_DIR


def create_app(state: ServerState, *, ui_dir: Path | None = UI_DIR) -> FastAPI:
    """The server app for ``state``; ``ui_dir=None`` serves the API only."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.hub.attach(asyncio.get_running_loop())
        tasks = []
        if state.poll_store:
            state.poller = StorePoller(state.store, state.hub, state.poll_interval_s)
            tasks.append(asyncio.create_task(state.poller.run()))
        if retention_policy(state) != (None, None):
            tasks.append(asyncio.create_task(run_retention(state)))
        try:
            if state.poll_store and state.settings.ingest_workers:
                state.ingest_workers = IngestWorkers(state.settings)
                await asyncio.to_thread(state.ingest_workers.start)
            yield
        finally:
            state.hub.close()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if state.ingest_workers is not None:
                await asyncio.to_thread(state.ingest_workers.close)

    app = FastAPI(
        title="traceyard",
        version=__version__,
        description="Query API and live stream of a traceyard data store.",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.traceyard = state
    install_error_handlers(app)
    for module in (
        routes_meta,
        routes_traces,
        routes_sessions,
        routes_scores,
        routes_prompts,
        routes_live,
    ):
        app.include_router(module.router)
    _include_ingestion(app)
    app.include_router(remote_routes.router)  # remote mode: apps send batches here
    if ui_dir is not None and ui_dir.is_dir():
        app.mount("/", StaticFiles(directory=ui_dir, html=True), name="ui")
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]

    if state.tracer is not None:
        state.tracer.add_batch_listener(state.hub.publish_events)
    settings = state.settings
    app.add_middleware(BodyLimit)
    app.add_middleware(
        AccessGuard,
        routes=app.router.routes,
        token=settings.auth_token,
        allowed_hosts=getattr(settings, "allowed_hosts", None) or (),
        allowed_origins=getattr(settings, "allowed_origins", None) or (),
    )
    app.add_middleware(RequestCounter, counters=state.counters)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(CollapseSlashes)
    return app


def _include_ingestion(app: FastAPI) -> None:
    """OTLP and Langfuse ingestion live in their own module; include them when present."""
    try:
        from traceyard.server import ingest_routes  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return
    app.include_router(ingest_routes.router)


class CollapseSlashes:
    """``//api/public/...`` is ``/api/public/...``: SDKs join a host that ends in a slash
    (as our printed URL does) with a path that starts with one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] in ("http", "websocket") and "//" in path:
            scope = {**scope, "path": re.sub("/{2,}", "/", path)}
        await self.app(scope, receive, send)


class SecurityHeaders:
    """Headers that keep trace data inert even if something slipped past the UI's own
    escaping: no inline script or style, no framing, no MIME sniffing. The OpenAPI docs page
    loads Swagger from a CDN, so it is left out of the policy."""

    CSP = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith("/api/docs"):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", self.CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


class RequestCounter:
    """Counts answered HTTP requests by status class, for ``/metrics``."""

    def __init__(self, app: ASGIApp, counters: ServerCounters) -> None:
        self.app = app
        self.requests = counters.requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                key = f"{message['status'] // 100}xx"
                self.requests[key] = self.requests.get(key, 0) + 1
            await send(message)

        await self.app(scope, receive, counting_send)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated schema, with our one error shape on every operation."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    error_schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in error_schema.pop("$defs", {}).items():
        components[name] = definition
    components["ErrorBody"] = error_schema
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    error_response = {
        "description": "Error (one shape for every error)",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            for status in list(responses):
                if status.startswith(("4", "5")):
                    responses[status] = error_response
            responses.setdefault("4XX", error_response)
            responses.setdefault("5XX", error_response)
    app.openapi_schema = schema
    return schema

"""Bounded request bodies: a body larger than the limit gets a 413, never a full read.

The query API takes small JSON bodies (a score, a delete filter); the ingestion routes
(``/v1/traces``, ``/api/public/*``) carry batches and get a larger bound of their own.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from traceyard.server.errors import error_response

#: Query API bodies (scores, delete filters) are a few KB; 1 MiB leaves room.
API_BODY_LIMIT = 1 << 20
#: OTLP and Langfuse batches: Langfuse caps a batch at 3.5 MB; OTLP exporters send ~1-5 MB.
INGEST_BODY_LIMIT = 16 << 20
INGEST_PREFIXES = ("/v1/", "/api/public/")


class BodyLimit:
    """ASGI middleware: refuse (413) bodies above the limit of their route family."""

    def __init__(
        self, app: ASGIApp, api_limit: int = API_BODY_LIMIT, ingest_limit: int = INGEST_BODY_LIMIT
    ) -> None:
        self.app = app
        self.api_limit = api_limit
        self.ingest_limit = ingest_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limit = self.ingest_limit if path.startswith(INGEST_PREFIXES) else self.api_limit
        declared = _content_length(scope)
        if declared is not None:
            # The HTTP server never passes on more than the declared length.
            if declared > limit:
                await self._refuse(scope, receive, send, limit)
                return
            await self.app(scope, receive, send)
            return
        # A chunked body: read it here, bounded, then hand it on in one message.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(scope, receive, send, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = error_response(
            413, f"request body too large: this route accepts at most {limit} bytes"
        )
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for key, value in scope["headers"]:
        if key.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None

"""Who may talk to the server: a bearer token when one is set, else loopback pages only.

* With ``auth_token``: every API route (HTTP and WebSocket) but ``/api/health`` needs it —
  ``Authorization: Bearer <token>`` on HTTP; ``?token=`` or the subprotocol
  ``traceyard.bearer.<token>`` on the WebSocket (browsers cannot set headers there). The
  token is the guard, so Host and Origin are not checked (a reverse proxy may rename both).
* Without a token (the loopback default) other websites the user visits must not reach the
  API through the browser: the Host header must be a loopback name or IP (a DNS-rebinding
  page arrives with its own host name) and an ``Origin`` must be this server's own origin.
  There are no CORS headers at all, so no other origin can read a response.

What needs the token is decided by matching the request against the app's routes, not by
path prefixes: a route added later is guarded unless it is listed in :data:`OPEN_PATHS`.
Requests that match no route fall through to the static UI files, which hold no data and
must load in a browser before the UI can ask for the token. ``/api/public/*`` (the Langfuse
ingestion API) does its own Basic auth.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable, Sequence
from urllib.parse import parse_qsl, urlsplit

from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from traceyard.errors import ConfigError
from traceyard.server.errors import error_response

#: Routes that never need the token.
OPEN_PATHS = frozenset({"/api/health"})
#: Route prefixes that authenticate on their own (Langfuse-compatible Basic auth).
SELF_AUTHENTICATED_PREFIXES = ("/api/public/",)
#: The WebSocket subprotocol that carries the token: ``traceyard.bearer.<token>``.
WS_TOKEN_PROTOCOL_PREFIX = "traceyard.bearer."
#: The subprotocol the UI offers alongside the token one; the server selects it.
WS_PROTOCOL = "traceyard"

MIN_TOKEN_LENGTH = 32
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback_host(host: str) -> bool:
    """``127.0.0.1``, ``::1``, ``localhost``, ``foo.localhost`` (RFC 6761) → True."""
    name = host.strip().strip("[]").rstrip(".").lower()
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind_safety(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without a token."""
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"auth_token must be at least {MIN_TOKEN_LENGTH} characters "
            f"(TRACEYARD_AUTH_TOKEN); got {len(token)}"
        )
    if token is None and not is_loopback_host(host):
        raise ConfigError(
            f"refusing to serve on {host!r} without an auth token: anyone who can reach it "
            f"could read and delete your traces. Set TRACEYARD_AUTH_TOKEN (or --auth-token) "
            f"to a secret of at least {MIN_TOKEN_LENGTH} characters, or listen on 127.0.0.1."
        )


def _split_host(value: str) -> str:
    """The host part of a ``Host`` header or netloc (``[::1]:80`` → ``::1``)."""
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class AccessGuard:
    """ASGI middleware applying the rules in the module docstring to HTTP and WebSocket."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Sequence[BaseRoute],
        token: str | None,
        allowed_hosts: Iterable[str] = (),
        allowed_origins: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.routes = routes  # the router's live list: routes added later are seen
        self.token = token.encode() if token else None
        self.allowed_hosts = frozenset(h.lower() for h in allowed_hosts)
        self.allowed_origins = frozenset(o.rstrip("/").lower() for o in allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, message = refusal
        response = error_response(
            status,
            message,
            headers={"WWW-Authenticate": 'Bearer realm="traceyard"'} if status == 401 else None,
        )
        if scope["type"] == "http":
            await response(scope, receive, send)
            return
        websocket = WebSocket(scope, receive, send)
        if "websocket.http.response" in scope.get("extensions", {}):
            await websocket.send_denial_response(response)
        else:
            await websocket.close(code=1008, reason=message[:120])

    # ------------------------------------------------------------------ the rules

    def refusal(self, scope: Scope) -> tuple[int, str] | None:
        """(status, message) when the request must be refused, else None."""
        headers = _headers(scope)
        if self.token is None:
            problem = self._browser_problem(scope, headers)
            if problem is not None:
                return 403, problem
            return None
        if not self.needs_token(scope):
            return None
        presented = self._presented_token(scope, headers)
        if presented is None:
            where = (
                "the query parameter ?token= or the subprotocol traceyard.bearer.<token>"
                if scope["type"] == "websocket"
                else "the header Authorization: Bearer <token>"
            )
            return 401, f"this server requires its auth token in {where}"
        if not hmac.compare_digest(presented.encode(), self.token):
            return 401, "the auth token is wrong"
        return None

    def needs_token(self, scope: Scope) -> bool:
        path: str = scope["path"]
        if path in OPEN_PATHS or path.startswith(SELF_AUTHENTICATED_PREFIXES):
            return False
        return self.matches_route(scope)

    def matches_route(self, scope: Scope) -> bool:
        """True when an API route (not the static catch-all) would handle the request."""
        for route in self.routes:
            if isinstance(route, Mount) and route.path == "":
                continue  # the UI's static files at the root
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                return True
        return False

    def _presented_token(self, scope: Scope, headers: dict[str, str]) -> str | None:
        if scope["type"] == "websocket":
            for key, value in parse_qsl(scope.get("query_string", b"").decode("latin-1")):
                if key == "token":
                    return str(value)
            for protocol in scope.get("subprotocols", ()):
                if protocol.startswith(WS_TOKEN_PROTOCOL_PREFIX):
                    return str(protocol[len(WS_TOKEN_PROTOCOL_PREFIX) :])
        authorization = headers.get("authorization", "")
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return str(credentials.strip())
        return None

    def _browser_problem(self, scope: Scope, headers: dict[str, str]) -> str | None:
        host_header = headers.get("host", "")
        host = _split_host(host_header)
        if not (is_loopback_host(host) or host.lower() in self.allowed_hosts):
            return (
                f"Host {host_header!r} is not a loopback name; without an auth token this "
                "server only answers requests addressed to 127.0.0.1 or localhost (set "
                "TRACEYARD_AUTH_TOKEN to serve other hosts)"
            )
        origin = headers.get("origin")
        if origin is None:
            return None  # not sent by a browser page on another site (or a same-origin GET)
        normalized = origin.rstrip("/").lower()
        if normalized in self.allowed_origins:
            return None
        parts = urlsplit(normalized)
        if parts.netloc and parts.netloc == host_header.lower():
            return None
        return (
            f"cross-origin request from {origin!r} refused: only pages served by this "
            "server may call its API"
        )


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def select_subprotocol(offered: Sequence[str]) -> str | None:
    """The subprotocol to accept: ``traceyard`` if offered, else the token one (browsers fail
    the handshake when a client offers subprotocols and the server selects none)."""
    if WS_PROTOCOL in offered:
        return WS_PROTOCOL
    for protocol in offered:
        if protocol.startswith(WS_TOKEN_PROTOCOL_PREFIX):
            return protocol
    return None

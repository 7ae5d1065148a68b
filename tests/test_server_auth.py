"""Auth and browser safety on every route, and the one error shape for every error."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Mount, Route, WebSocketRoute
from test_server_support import TOKEN, asgi_client, loopback_server, make_state, seed
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from traceyard._internal import guard
from traceyard.capture.tracer import Tracer
from traceyard.errors import ConfigError
from traceyard.server.app import create_app
from traceyard.server.auth import OPEN_PATHS, check_bind_safety, is_loopback_host
from traceyard.server.state import ServerState
from traceyard.store.sqlite import SQLiteStore

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def token_tracer(tmp_path: Path) -> Tracer:
    tracer = Tracer.create(data_dir=tmp_path / "tok", start_server=False, auth_token=TOKEN)
    yield tracer
    tracer.stop()


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "some-id", path)


def _routes(state: ServerState) -> list[tuple[str, str]]:
    """(method, path) of every HTTP route the app has, and ("WS", path) for WebSockets,
    flattened through included routers."""
    app = create_app(state)
    found: list[tuple[str, str]] = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, WebSocketRoute):
            found.append(("WS", str(context.path)))
        elif isinstance(route, Mount):
            assert route.path == "", f"unexpected mount {route!r}"  # the UI files at the root
        else:
            assert isinstance(route, (APIRoute, Route)), f"unexpected route {route!r}"
            for method in sorted(context.methods or ()):
                if method != "HEAD":
                    found.append((method, str(context.path)))
    return found


async def test_every_route_needs_the_token_except_health(token_tracer: Tracer) -> None:
    state = make_state(token_tracer)
    routes = _routes(state)
    http_routes = [(m, p) for m, p in routes if m != "WS"]
    assert len(http_routes) >= 14 and ("WS", "/api/ws") in routes
    async with asgi_client(state, ui=True) as client:
        for method, path in http_routes:
            url = _concrete(path)
            anonymous = await client.request(method, url)
            wrong = await client.request(
                method, url, headers={"Authorization": "Bearer " + "x" * 32}
            )
            right = await client.request(method, url, headers=AUTH)
            if path in OPEN_PATHS:
                assert anonymous.status_code == 200, path
                continue
            if path.startswith("/api/public/"):
                # Langfuse ingestion authenticates with its own Basic auth, not our token.
                assert "auth token" not in anonymous.text, (method, path)
                if path not in ("/api/public/health", "/api/public/ready"):
                    # 401, or 4xx for a signed upload URL without its signature
                    assert 400 <= anonymous.status_code < 500, (method, path, anonymous.text)
                continue
            for response in (anonymous, wrong):
                assert response.status_code == 401, (method, path, response.text)
                assert response.json()["error"]["code"] == "unauthorized"
                assert response.headers["www-authenticate"].startswith("Bearer")
            assert right.status_code not in (401, 403), (method, path, right.text)
        # The UI's files hold no data and must load before the UI can ask for the token.
        page = await client.get("/")
        assert page.status_code == 200 and "<html" in page.text.lower()


def test_websocket_takes_the_token_by_query_or_subprotocol(token_tracer: Tracer) -> None:
    state = make_state(token_tracer)
    with loopback_server(state) as server:
        ws_url = server.url.replace("http://", "ws://") + "api/ws"
        for attempt in (ws_url, ws_url + "?token=" + "x" * 32):
            with pytest.raises(InvalidStatus) as refused:
                connect(attempt).close()
            assert refused.value.response.status_code == 401
        with connect(ws_url + "?token=" + TOKEN) as ws:
            assert '"hello"' in ws.recv(timeout=5)
        with connect(ws_url, subprotocols=["traceyard", f"traceyard.bearer.{TOKEN}"]) as ws:
            assert ws.subprotocol == "traceyard"
            assert '"hello"' in ws.recv(timeout=5)


async def test_without_a_token_foreign_hosts_and_origins_are_refused(tracer: Tracer) -> None:
    state = make_state(tracer)
    seed(state.store, 3)
    async with asgi_client(state) as client:
        ok = await client.get("/api/traces")
        assert ok.status_code == 200 and len(ok.json()["data"]) == 3
        for host in ("localhost:7842", "127.0.0.1", "[::1]:7842", "app.localhost"):
            response = await client.get("/api/traces", headers={"Host": host})
            assert response.status_code == 200, host
        # DNS rebinding: a page on evil.example resolved to 127.0.0.1 sends its own Host.
        for host in ("evil.example", "evil.example:7842", "192.168.1.5", "127.0.0.1.evil.example"):
            response = await client.get("/api/traces", headers={"Host": host})
            assert response.status_code == 403, host
            assert "Host" in response.json()["error"]["message"]
        same_origin = await client.get("/api/traces", headers={"Origin": "http://127.0.0.1:7842"})
        assert same_origin.status_code == 200
        for origin in ("http://evil.example", "null", "http://127.0.0.1:9999", "http://localhost"):
            for method, url in (("GET", "/api/traces"), ("POST", "/api/traces/delete"),
                                ("DELETE", "/api/traces/x"), ("GET", "/api/health")):  # fmt: skip
                response = await client.request(
                    method, url, headers={"Origin": origin}, json={"all": True}
                )
                assert response.status_code == 403, (origin, method, url)
                assert "cross-origin" in response.json()["error"]["message"]
        preflight = await client.options(
            "/api/traces",
            headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "DELETE"},
        )
        assert "access-control-allow-origin" not in preflight.headers
        assert len((await client.get("/api/traces")).json()["data"]) == 3, "nothing was deleted"


def test_websocket_refuses_cross_origin_pages(tracer: Tracer) -> None:
    with loopback_server(make_state(tracer)) as server:
        ws_url = server.url.replace("http://", "ws://") + "api/ws"
        with pytest.raises(InvalidStatus) as refused:
            connect(ws_url, origin="http://evil.example").close()  # type: ignore[arg-type]
        assert refused.value.response.status_code == 403
        own_origin = server.url.rstrip("/")
        with connect(ws_url, origin=own_origin) as ws:  # type: ignore[arg-type]
            assert '"hello"' in ws.recv(timeout=5)


def test_refuses_to_listen_beyond_loopback_without_a_token() -> None:
    with pytest.raises(ConfigError, match="TRACEYARD_AUTH_TOKEN"):
        check_bind_safety("0.0.0.0", None)
    with pytest.raises(ConfigError, match="at least 32"):
        check_bind_safety("127.0.0.1", "short")
    check_bind_safety("0.0.0.0", TOKEN)
    check_bind_safety("::1", None)
    assert is_loopback_host("127.9.9.9") and not is_loopback_host("10.0.0.1")


def test_embedded_server_does_not_start_on_a_public_host_without_token(tmp_path: Path) -> None:
    tracer = Tracer.create(data_dir=tmp_path / "d", start_server=True, host="0.0.0.0", port=0)
    try:
        assert tracer.server is None
        errors = list(guard.recorded)
        assert any("TRACEYARD_AUTH_TOKEN" in str(e) for e in errors), errors
    finally:
        guard.recorded.clear()  # the refusal was the point of this test
        tracer.stop()


class _BrokenStore(SQLiteStore):
    def list_traces(self, query):  # type: ignore[no-untyped-def]
        raise RuntimeError("disk on fire")


async def test_one_error_shape_for_every_error(tmp_path: Path, token_tracer: Tracer) -> None:
    shape: dict[int, dict[str, object]] = {}
    async with asgi_client(make_state(token_tracer), AUTH) as client:
        responses = {
            404: await client.get("/api/traces/missing"),
            405: await client.put("/api/traces"),
            422: await client.get("/api/traces", params={"limit": "many"}),
            413: await client.post("/api/scores", content=b"x" * (2 << 20),
                                   headers={"Content-Type": "application/json"}),
            400: await client.get("/api/traces", params={"cursor": "bogus"}),
        }  # fmt: skip
        responses[401] = await client.get("/api/traces", headers={"Authorization": "Bearer no"})
    async with asgi_client(make_state(token_tracer), AUTH) as client:
        responses[403] = await client.get("/api/traces", headers={"Host": "evil.example"})
    # 403 for a foreign host applies when no token is set
    no_token = Tracer.create(data_dir=tmp_path / "plain", start_server=False)
    try:
        async with asgi_client(make_state(no_token)) as client:
            responses[403] = await client.get("/api/traces", headers={"Host": "evil.example"})
        broken = make_state(no_token)
        broken.store = _BrokenStore(tmp_path / "broken.db")
        app = create_app(broken, ui_dir=None)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            responses[500] = await client.get("/api/traces")
        assert [type(e) for e in guard.recorded] == [RuntimeError], "a 500 is an internal error"
        guard.recorded.clear()
        broken.store.close()
    finally:
        no_token.stop()
    for status, response in responses.items():
        assert response.status_code == status, (status, response.text)
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert set(body) == {"error"}, body
        error = body["error"]
        assert set(error) == {"status", "code", "message", "details"}
        assert error["status"] == status and error["message"], body
        shape[status] = error
    assert responses[422].json()["error"]["details"][0]["loc"] == ["query", "limit"]
    assert "limit" in responses[422].json()["error"]["message"]
    assert "disk on fire" not in responses[500].text, "internal details stay in the log"
    assert len({e["code"] for e in shape.values()}) == len(shape)

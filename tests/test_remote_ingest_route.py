"""``POST /api/ingest`` in process (httpx.ASGITransport), and the wire format both ways."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from starlette.routing import Mount

from traceyard.capture.tracer import Tracer
from traceyard.model import Entity, Event, Level, ObservationType, ScoreDataType, ScoreSource
from traceyard.remote.wire import HOST_KEY, PID_KEY, decode_body, encode_body
from traceyard.server import remote_routes
from traceyard.server.app import create_app
from traceyard.server.state import ServerState

TOKEN = "r" * 16 + "0123456789abcdef"


def _events(trace_id: str = "a" * 32) -> list[Event]:
    return [
        Event(Entity.TRACE, trace_id, trace_id, "proj", {"name": "run", "tags": ["x", "y"]}),
        Event(
            Entity.OBSERVATION,
            "b" * 16,
            trace_id,
            "proj",
            {
                "type": ObservationType.GENERATION,
                "name": "llm",
                "start_time": 1_700_000_000_000_000_000,
                "end_time": 1_700_000_001_000_000_000,
                "level": Level.WARNING,
                "input": [{"role": "user", "content": "hi"}],
                "output": "hello",
                "model": "gpt-4o-mini",
                "usage": {"input": 10, "output": 5, "total": 15},
                "cost": {"total": 0.001},
                "metadata": {"k": {"nested": [1, 2]}},
            },
        ),
        Event(
            Entity.SCORE,
            "s1",
            trace_id,
            "proj",
            {
                "name": "quality",
                "value": 0.5,
                "data_type": ScoreDataType.NUMERIC,
                "source": ScoreSource.EVAL,
                "timestamp": 1_700_000_002_000_000_000,
            },
        ),
    ]


def test_events_survive_the_wire_exactly() -> None:
    sent = _events()
    decoded = decode_body(encode_body(sent, {"host": "web-1", "pid": 42}))
    assert decoded.rejected == 0
    assert (decoded.host, decoded.pid) == ("web-1", 42)
    assert decoded.events == sent  # enums come back as enums, times as ints


def test_each_bad_event_is_refused_alone_with_its_reason() -> None:
    good = _events()
    body = json.loads(encode_body(good))
    body["events"] += [
        {"entity": "span", "id": "x1", "trace_id": "t", "project": "p", "fields": {}},
        {
            "entity": "observation",
            "id": "x2",
            "trace_id": "t",
            "project": "p",
            "fields": {"type": "banana"},
        },
        {
            "entity": "observation",
            "id": "x3",
            "trace_id": "t",
            "project": "p",
            "fields": {"start_time": "yesterday"},
        },
        {"entity": "trace", "id": "x4", "trace_id": "x4", "project": "p", "fields": {"color": 1}},
        {"entity": "observation", "id": "", "trace_id": "t", "project": "p", "fields": {}},
        "not an object",
    ]
    decoded = decode_body(json.dumps(body).encode())
    assert decoded.events == good
    assert decoded.rejected == 6
    errors = {e["index"]: e["error"] for e in decoded.errors}
    assert "entity must be one of" in errors[3]
    assert "type must be one of span, generation" in errors[4]
    assert "start_time must be integer nanoseconds" in errors[5]
    assert "unknown trace field 'color'" in errors[6]
    assert "id must be a non-empty string" in errors[7]
    assert "an event must be an object" in errors[8]


@asynccontextmanager
async def _client(tracer: Tracer, token: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
    assert tracer.store is not None
    settings = tracer.settings.model_copy(update={"auth_token": token})
    app = create_app(ServerState(store=tracer.store, settings=settings, tracer=tracer))
    if not any(getattr(r, "path", None) == "/api/ingest" for r in app.router.routes):
        app.include_router(remote_routes.router)
        app.router.routes.sort(key=lambda route: isinstance(route, Mount))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1", headers=headers
    ) as client:
        yield client


async def test_a_gzip_batch_is_stored_with_its_host_and_process(tracer: Tracer) -> None:
    body = gzip.compress(encode_body(_events(), {"host": "web-7", "pid": 4242}))
    async with _client(tracer) as client:
        response = await client.post(
            "/api/ingest", content=body, headers={"Content-Encoding": "gzip"}
        )
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 3, "rejected": 0, "errors": []}
    assert tracer.flush(10) == 0
    assert tracer.store is not None
    trace = tracer.store.get_trace("a" * 32)
    assert trace is not None
    assert trace.metadata[HOST_KEY] == "web-7" and trace.metadata[PID_KEY] == 4242
    assert trace.tags == ["x", "y"]
    (generation,) = trace.observations
    assert generation.type is ObservationType.GENERATION and generation.level is Level.WARNING
    assert generation.usage == {"input": 10, "output": 5, "total": 15}
    assert generation.input == [{"role": "user", "content": "hi"}]
    (score,) = tracer.store.list_scores(trace_id="a" * 32).data
    assert score.name == "quality" and score.source is ScoreSource.EVAL


async def test_a_partly_bad_batch_keeps_its_good_part(tracer: Tracer) -> None:
    body = json.loads(encode_body(_events()))
    body["events"].append(
        {
            "entity": "observation",
            "id": "zz",
            "trace_id": "t",
            "project": "p",
            "fields": {"level": "LOUD"},
        }
    )
    async with _client(tracer) as client:
        response = await client.post("/api/ingest", content=json.dumps(body))
        refused = await client.post(
            "/api/ingest", content=json.dumps({"events": body["events"][-1:]})
        )
    assert response.status_code == 207
    assert response.json()["accepted"] == 3 and response.json()["rejected"] == 1
    assert response.json()["errors"][0]["id"] == "zz"
    assert refused.status_code == 400
    assert "level must be one of DEBUG" in refused.json()["error"]["message"]
    assert refused.json()["errors"][0]["index"] == 0
    assert tracer.flush(10) == 0
    assert tracer.store is not None and tracer.store.get_trace("a" * 32) is not None
    assert tracer.store.get_observation("zz") is None


@pytest.mark.parametrize(
    ("content", "headers", "status", "says"),
    [
        (b"{not json", {}, 400, "not valid JSON"),
        (b'{"events": 3}', {}, 400, '{"source": {...}, "events": [...]}'),
        (b"\x1f\x8b garbage", {"Content-Encoding": "gzip"}, 400, "gzip"),
        (b"{}", {"Content-Encoding": "br"}, 415, "unsupported Content-Encoding"),
    ],
)
async def test_unusable_bodies_get_a_clear_4xx(
    tracer: Tracer, content: bytes, headers: dict[str, str], status: int, says: str
) -> None:
    async with _client(tracer) as client:
        response = await client.post("/api/ingest", content=content, headers=headers)
    assert response.status_code == status
    assert says in response.json()["error"]["message"]


async def test_a_gzip_bomb_is_refused_not_inflated(tracer: Tracer) -> None:
    bomb = gzip.compress(b"[" + b" " * (remote_routes.MAX_DECODED_BYTES + 10) + b"]")
    async with _client(tracer) as client:
        response = await client.post(
            "/api/ingest", content=bomb, headers={"Content-Encoding": "gzip"}
        )
    assert response.status_code == 413
    assert str(remote_routes.MAX_DECODED_BYTES) in response.json()["error"]["message"]


async def test_a_full_queue_answers_429_with_retry_after_and_queues_nothing(
    data_dir: Path,
) -> None:
    tracer = Tracer.create(data_dir=data_dir, queue_maxsize=2, start_server=False)
    try:
        async with _client(tracer) as client:
            response = await client.post("/api/ingest", content=encode_body(_events()))
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) >= 1
        assert "write queue is full" in response.json()["error"]["message"]
        assert len(tracer._queue) == 0 and tracer._queue.dropped == 0
    finally:
        tracer.stop()


async def test_the_route_needs_the_servers_token(tracer: Tracer) -> None:
    async with _client(tracer, token=TOKEN) as client:
        allowed = await client.post("/api/ingest", content=encode_body(_events()))
        client.headers.pop("Authorization")
        refused = await client.post("/api/ingest", content=encode_body(_events()))
    assert allowed.status_code == 200
    assert refused.status_code == 401

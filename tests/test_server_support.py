"""Helpers shared by the server tests: seeded data with known answers, in-process clients.

Imported by the test_server_* modules; it holds no tests itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import httpx

from traceyard.capture.tracer import Tracer
from traceyard.model import Entity, Event, Level, ObservationType
from traceyard.server.app import create_app
from traceyard.server.embedded import EmbeddedServer, bind_socket
from traceyard.server.state import ServerState
from traceyard.store.base import Store

BASE_NS = int(datetime(2026, 3, 1, tzinfo=timezone.utc).timestamp()) * 10**9
TOKEN = "t" * 16 + "0123456789abcdef"  # 32 characters
MODELS = ("gpt-4o-mini", "claude-3-5-sonnet")


@dataclass
class SeedTrace:
    """What we wrote for one trace, to compute expected filter results in Python."""

    id: str
    project: str
    name: str
    user_id: str
    session_id: str
    tags: list[str]
    metadata: dict[str, str]
    start_ns: int
    latency_ms: float
    model: str
    error: bool
    text: str
    cost: float = 0.0
    tokens: float = 0.0
    observation_ids: list[str] = field(default_factory=list)


def seed(store: Store, count: int = 40, start_index: int = 0) -> list[SeedTrace]:
    """Write ``count`` varied traces (3 observations each) straight through the store."""
    seeded: list[SeedTrace] = []
    events: list[Event] = []
    for i in range(start_index, start_index + count):
        trace_id = f"trace-{i:05d}"
        project = "alpha" if i % 2 == 0 else "beta"
        start = BASE_NS + i * 60 * 10**9
        latency_ms = 100.0 + (i % 7) * 50
        model = MODELS[i % 2]
        error = i % 5 == 0
        text = "find the needle" if i % 6 == 0 else f"question {i}"
        seed_trace = SeedTrace(
            id=trace_id,
            project=project,
            name=f"chat-{i % 4}",
            user_id=f"user-{i % 3}",
            session_id=f"session-{i % 4}",
            tags=["prod", f"tier-{i % 2}"] if i % 3 == 0 else ["dev"],
            metadata={"env": "prod" if i % 3 == 0 else "dev", "region": f"r{i % 2}"},
            start_ns=start,
            latency_ms=latency_ms,
            model=model,
            error=error,
            text=text,
        )
        end = start + int(latency_ms * 1e6)
        events.append(
            Event(
                Entity.TRACE,
                trace_id,
                trace_id,
                project,
                {
                    "name": seed_trace.name,
                    "user_id": seed_trace.user_id,
                    "session_id": seed_trace.session_id,
                    "tags": seed_trace.tags,
                    "metadata": seed_trace.metadata,
                    "input": {"question": text},
                    "output": {"answer": f"answer {i}"},
                },
            )
        )
        root, gen, tool = f"{trace_id}-root", f"{trace_id}-gen", f"{trace_id}-tool"
        seed_trace.observation_ids = [root, gen, tool]
        tokens_in, tokens_out = 100 + i, 20 + i
        seed_trace.tokens = tokens_in + tokens_out
        cost = round(0.001 * (i + 1), 6)
        seed_trace.cost = cost
        for obs_id, obs_type, parent, extra in (
            (root, ObservationType.CHAIN, None, {"start_time": start, "end_time": end}),
            (
                gen,
                ObservationType.GENERATION,
                root,
                {
                    "start_time": start + 10**6,
                    "end_time": end - 10**6,
                    "completion_start_time": start + 5 * 10**6,
                    "model": model,
                    "usage": {"input": tokens_in, "output": tokens_out, "total": seed_trace.tokens},
                    "cost": {"input": cost / 2, "output": cost / 2, "total": cost},
                    "input": [{"role": "user", "content": text}],
                    "output": {"role": "assistant", "content": f"answer {i}"},
                },
            ),
            (
                tool,
                ObservationType.TOOL,
                root,
                {
                    "start_time": start + 2 * 10**6,
                    "end_time": start + 3 * 10**6,
                    "level": Level.ERROR if error else Level.DEFAULT,
                    "status_message": "tool failed" if error else None,
                },
            ),
        ):
            events.append(
                Event(
                    Entity.OBSERVATION,
                    obs_id,
                    trace_id,
                    project,
                    {"type": obs_type, "name": obs_type.value, "parent_id": parent, **extra},
                )
            )
        seeded.append(seed_trace)
    store.write(events)
    return seeded


def make_state(tracer: Tracer, **changes: Any) -> ServerState:
    assert tracer.store is not None
    return ServerState(store=tracer.store, settings=tracer.settings, tracer=tracer, **changes)


@asynccontextmanager
async def asgi_client(
    state: ServerState, headers: dict[str, str] | None = None, *, ui: bool = False
) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client for the app of ``state`` (addressed to a loopback host)."""
    kwargs: dict[str, Any] = {} if ui else {"ui_dir": None}
    app = create_app(state, **kwargs)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://127.0.0.1:7842", headers=headers or {}
    ) as client:
        yield client


@contextmanager
def loopback_server(state: ServerState) -> Iterator[EmbeddedServer]:
    """The real server (uvicorn, own thread and loop) on a free loopback port."""
    server = EmbeddedServer(state, bind_socket("127.0.0.1", 0)).start()
    try:
        yield server
    finally:
        server.stop()

"""Helpers for the browser tests: realistic seeded traces, the real server on a loopback port
(optionally behind a path prefix or with a token), and Chromium through Playwright.

Traces are made through the tracer's public API with explicit timestamps, so the waterfall,
the dashboard's time buckets and the sessions look like a real app's, and every test run
produces the same shapes.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from traceyard.capture.observation import ActiveObservation
from traceyard.capture.tracer import Tracer
from traceyard.server.app import create_app
from traceyard.server.embedded import bind_socket, uvicorn_config
from traceyard.server.state import ServerState

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
#: Tokens must be at least 32 characters (Settings.auth_token).
TOKEN = "ui-test-token-0123456789abcdefghijklmnop"

MS = 1_000_000  # nanoseconds


# --------------------------------------------------------------------------- seeding


def _obs(
    tracer: Tracer,
    name: str,
    kind: str,
    start: int,
    duration_ms: float,
    parent: ActiveObservation | None = None,
    **fields: Any,
) -> ActiveObservation:
    """An observation with explicit start and end (the tracer API, timestamps chosen)."""
    end = start + int(duration_ms * MS)
    return tracer.start_observation(
        name, kind, parent=parent, start_time=start, end_time=end, **fields
    )


@dataclass
class Seeded:
    """Ids of the seeded data that tests look for."""

    chat_trace_id: str = ""
    generation_id: str = ""
    error_trace_id: str = ""
    session_id: str = "session-7f3a"
    user_ids: list[str] = field(default_factory=list)
    trace_ids: list[str] = field(default_factory=list)


def seed_agent_turn(
    tracer: Tracer,
    start: int,
    *,
    question: str,
    answer: str,
    user_id: str,
    session_id: str | None,
    model: str = "gpt-4o-mini",
    fail_tool: bool = False,
    name: str = "support-agent",
    tags: tuple[str, ...] = ("prod", "support"),
) -> tuple[str, str]:
    """A LangChain-style agent turn: plan (LLM with a tool call), tool, retriever, answer.

    Returns (trace id, id of the first generation)."""
    system = "You are a helpful support agent for Acme Cloud. Answer briefly and cite docs."
    root = _obs(
        tracer,
        name,
        "agent",
        start,
        2400,
        input={"question": question},
        metadata={"route": "/chat", "region": "eu-west-1"},
    )
    root.update_trace(user_id=user_id, session_id=session_id, tags=list(tags), release="1.4.2")
    plan = _obs(
        tracer,
        "ChatOpenAI",
        "generation",
        start + 40 * MS,
        820,
        parent=root,
        model=model,
        model_parameters={"temperature": 0.2, "max_tokens": 512},
        completion_start_time=start + 390 * MS,
        input=[
            {"role": "system", "content": system},
            {"role": "user", "content": question},
        ],
        output={
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "call_1", "name": "search_docs", "arguments": {"query": question[:40]}}
            ],
        },
        usage={"input": 412, "output": 38, "cache_read": 128},
    )
    tool = _obs(
        tracer,
        "search_docs",
        "tool",
        start + 880 * MS,
        420,
        parent=root,
        input={"query": question[:40]},
    )
    retriever = _obs(
        tracer,
        "vector-search",
        "retriever",
        start + 900 * MS,
        300,
        parent=tool,
        input=question[:40],
        output=[
            {
                "page_content": "Billing happens on the 1st of each month.",
                "metadata": {"src": "billing.md"},
            },
            {
                "page_content": "Invoices can be downloaded from Settings → Billing.",
                "metadata": {"src": "invoices.md"},
            },
        ],
    )
    _obs(
        tracer,
        "embed-query",
        "embedding",
        start + 905 * MS,
        60,
        parent=retriever,
        model="text-embedding-3-small",
        usage={"input": 12},
    )
    if fail_tool:
        tool.update(
            level="ERROR",
            status_message="TimeoutError: docs index did not answer within 300 ms",
            output=None,
        )
    else:
        tool.update(
            output="Billing happens on the 1st of each month. Invoices: Settings → Billing."
        )
    _obs(
        tracer,
        "guard-pii",
        "guardrail",
        start + 1310 * MS,
        35,
        parent=root,
        input=answer[:30],
        output={"pii": False},
    )
    final = _obs(
        tracer,
        "ChatOpenAI",
        "generation",
        start + 1350 * MS,
        1000,
        parent=root,
        model=model,
        model_parameters={"temperature": 0.2},
        completion_start_time=start + 1600 * MS,
        input=[
            {"role": "system", "content": system},
            {"role": "user", "content": question},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"id": "call_1", "name": "search_docs", "arguments": {"query": question[:40]}}
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "Billing happens on the 1st."},
        ],
        output={"role": "assistant", "content": answer},
        usage={"input": 655, "output": 121},
    )
    tracer.start_observation("answer-sent", "event", parent=root, start_time=start + 2380 * MS)
    root.update(output={"answer": answer})
    root.update_trace(output={"answer": answer})
    del final
    return root.trace_id, plan.id


def seed(tracer: Tracer, *, now_ns: int | None = None, extra_traces: int = 30) -> Seeded:
    """A small realistic data set: a multi-turn session, an error, assorted pipelines, scores."""
    now = now_ns or time.time_ns()
    out = Seeded(user_ids=["alice@acme.io", "bob@acme.io", "carol@acme.io"])
    turns = [
        ("When am I billed each month?", "You're billed on the 1st of each month."),
        ("Where do I find my invoices?", "Under Settings → Billing → Invoices."),
        ("Can I get them by email?", "Yes: enable 'Email invoices' in Billing settings."),
    ]
    for i, (question, answer) in enumerate(turns):
        trace_id, gen_id = seed_agent_turn(
            tracer,
            now - (30 - i * 3) * 60_000 * MS,
            question=question,
            answer=answer,
            user_id="alice@acme.io",
            session_id=out.session_id,
        )
        out.trace_ids.append(trace_id)
        if i == 0:
            out.chat_trace_id, out.generation_id = trace_id, gen_id
            tracer.score("helpfulness", 0.9, trace_id=trace_id, comment="clear and short")
            tracer.score("correct", True, trace_id=trace_id, observation_id=gen_id)
    out.error_trace_id, _ = seed_agent_turn(
        tracer,
        now - 12 * 60_000 * MS,
        question="Why was my card declined?",
        answer="I could not reach the docs right now.",
        user_id="bob@acme.io",
        session_id="session-b2",
        fail_tool=True,
        model="claude-3-5-haiku",
    )
    out.trace_ids.append(out.error_trace_id)
    names = ["rag-pipeline", "summarize-ticket", "classify-intent", "translate"]
    models = ["gpt-4o-mini", "gpt-4o", "claude-3-5-haiku"]
    for i in range(extra_traces):
        start = now - int((i + 1) * 47 * 60_000 * MS)  # spread over the last day
        name = names[i % len(names)]
        root = _obs(
            tracer, name, "chain", start, 300 + (i * 137) % 2600, input=f"ticket #{1000 + i}"
        )
        root.update_trace(user_id=out.user_ids[i % 3], tags=["batch"] if i % 2 else ["prod"])
        _obs(
            tracer,
            "llm",
            "generation",
            start + 20 * MS,
            200 + (i * 97) % 2300,
            parent=root,
            model=models[i % 3],
            usage={"input": 300 + 17 * i, "output": 40 + 3 * i},
            output=f"result {i}",
        )
        out.trace_ids.append(root.trace_id)
    return out


HOSTILE = [
    '<img src=x onerror="window.__xss=(window.__xss||0)+1">',
    "<script>window.__xss=(window.__xss||0)+1</script>",
    "javascript:window.__xss=(window.__xss||0)+1",
    '"><svg onload="window.__xss=(window.__xss||0)+1">',
]


def seed_hostile(tracer: Tracer, start: int | None = None) -> tuple[str, str, str]:
    """A trace with a hostile string in every field. Returns (trace, generation, session)."""
    h = " | ".join(HOSTILE)
    start = start or time.time_ns() - 5_000 * MS
    root = _obs(
        tracer,
        f"evil {HOSTILE[0]}",
        "agent",
        start,
        900,
        input={HOSTILE[1]: h, "messages-ish": HOSTILE[3]},
        metadata={HOSTILE[0]: HOSTILE[2], "k": h},
    )
    session = f"sess {HOSTILE[3]}"
    root.update_trace(
        user_id=f"user {HOSTILE[0]}",
        session_id=session,
        tags=[HOSTILE[1], HOSTILE[2]],
        metadata={HOSTILE[2]: h},
        release=HOSTILE[3],
    )
    gen = _obs(
        tracer,
        f"gen {HOSTILE[3]}",
        "generation",
        start + 10 * MS,
        500,
        parent=root,
        model=f"model {HOSTILE[0]}",
        model_parameters={HOSTILE[1]: HOSTILE[2]},
        input=[
            {"role": "system", "content": HOSTILE[0]},
            {"role": f"user {HOSTILE[1]}", "content": h},
            {
                "role": "assistant",
                "content": HOSTILE[2],
                "tool_calls": [
                    {"id": HOSTILE[3], "name": HOSTILE[0], "arguments": {HOSTILE[1]: HOSTILE[2]}}
                ],
            },
        ],
        output={"role": "assistant", "content": h},
        usage={"input": 10, "output": 5, HOSTILE[1]: 3},
        metadata={HOSTILE[3]: HOSTILE[0]},
        level="ERROR",
        status_message=f"boom {h}",
    )
    tracer.score(f"score {HOSTILE[0]}", HOSTILE[1], trace_id=root.trace_id, comment=h)
    tracer.score(HOSTILE[2], 1.0, trace_id=root.trace_id, observation_id=gen.id, comment=h)
    root.update(output=h)
    return root.trace_id, gen.id, session


# --------------------------------------------------------------------------- the server


class StripPrefix:
    """What a reverse proxy does with ``location /prefix/ { proxy_pass http://app/; }``: the
    app sees paths without the prefix; the browser only ever sees the prefixed URLs."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if not path.startswith(self.prefix + "/"):
            if scope["type"] == "http":
                await send({"type": "http.response.start", "status": 404, "headers": []})
                await send({"type": "http.response.body", "body": b"outside the prefix"})
            return
        inner = path[len(self.prefix) :]
        raw = scope.get("raw_path")
        scope = {**scope, "path": inner, "raw_path": raw[len(self.prefix) :] if raw else None}
        await self.app(scope, receive, send)


#: The strictest policy the UI is meant to run under: no inline script or style, no other
#: origin. Tests serve the real app behind it so any violation shows up as a browser error.
STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


class WithHeaders:
    """Adds response headers (here: a Content-Security-Policy) to every HTTP response."""

    def __init__(self, app: ASGIApp, headers: dict[str, str]) -> None:
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.headers]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class LiveServer:
    """The real traceyard app on 127.0.0.1 (a free port), in a thread; ``stop()`` ends it."""

    def __init__(
        self, tracer: Tracer, *, token: str | None = None, prefix: str = "", csp: bool = True
    ) -> None:
        settings = tracer.settings
        if token is not None:
            settings = settings.model_copy(update={"auth_token": token})
        self.state = ServerState(store=tracer.store, settings=settings, tracer=tracer)  # type: ignore[arg-type]
        app: ASGIApp = create_app(self.state)
        if csp:
            app = WithHeaders(app, {"Content-Security-Policy": STRICT_CSP})
        if prefix:
            app = StripPrefix(app, prefix)
        self._socket = bind_socket("127.0.0.1", 0)
        port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}{prefix.rstrip('/')}/"
        self._server = uvicorn.Server(uvicorn_config(app))
        self._thread = threading.Thread(target=self._run, name="ui-test-server", daemon=True)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._server.serve(sockets=[self._socket]))
        finally:
            loop.close()
            self._socket.close()

    def start(self, timeout: float = 10.0) -> LiveServer:
        self._thread.start()
        wait_for(lambda: self._server.started, timeout, "the server to start")
        return self

    def stop(self) -> None:
        self.state.hub.close()
        self._server.should_exit = True
        self._thread.join(10)


@contextlib.contextmanager
def live_server(tracer: Tracer, **kwargs: Any) -> Iterator[LiveServer]:
    server = LiveServer(tracer, **kwargs).start()
    try:
        yield server
    finally:
        server.stop()


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``condition`` until it is true, failing with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def seed_big_trace(tracer: Tracer, observations: int = 5000, *, start: int | None = None) -> str:
    """One trace of ``observations`` nodes: an agent with steps, each with LLM calls and tools.

    One event per observation (start and end together), so the per-run event cap is not hit."""
    t0 = start or time.time_ns() - 60_000 * MS
    root = _obs(tracer, "big-agent-run", "agent", t0, 50_000, input="a long task")
    made, step = 1, 0
    kinds = ["generation", "tool", "span", "retriever"]
    while made < observations:
        step_start = t0 + step * 900 * MS
        parent = _obs(tracer, f"step-{step}", "chain", step_start, 850, parent=root)
        made += 1
        for i in range(min(24, observations - made)):
            kind = kinds[i % len(kinds)]
            extra: dict[str, Any] = (
                {"model": "gpt-4o-mini", "usage": {"input": 100 + i, "output": 20}}
                if kind == "generation"
                else {}
            )
            _obs(
                tracer,
                f"{kind}-{step}-{i}",
                kind,
                step_start + i * 30 * MS,
                25,
                parent=parent,
                **extra,
            )
            made += 1
        step += 1
    return root.trace_id

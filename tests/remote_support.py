"""Test support for remote mode: a central traceyard server on loopback, and its clients.

The central server is what ``traceyard serve`` runs: the server app over uvicorn on
127.0.0.1 (a free port, or a given one to restart on), with a tracer of its own whose writer
makes ingested batches durable in a SQLite file. It can be stopped and started again on the
same port and data dir, as an operator restarting it would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from starlette.routing import Mount

from traceyard.capture.tracer import Tracer
from traceyard.config import load_settings
from traceyard.server import remote_routes
from traceyard.server.embedded import EmbeddedServer, bind_socket
from traceyard.server.state import ServerState
from traceyard.store.base import TraceQuery

REPO = Path(__file__).resolve().parent.parent
#: Variables of the routing settings: cleared around servers so theirs stay local.
ROUTING_VARS = (
    "TRACEYARD_ENDPOINT",
    "TRACEYARD_TRACING_MODE",
    "TRACEYARD_FORWARD_TARGETS",
    "TRACEYARD_AUTH_TOKEN",
)


@contextmanager
def clean_routing_env() -> Iterator[None]:
    saved = {name: os.environ.pop(name) for name in ROUTING_VARS if name in os.environ}
    try:
        yield
    finally:
        for name in ROUTING_VARS:
            os.environ.pop(name, None)
        os.environ.update(saved)


def include_remote_routes(server: EmbeddedServer) -> None:
    """Until app.py includes the remote router: add it, ahead of the UI's catch-all mount."""
    app = server.app
    if any(getattr(route, "path", None) == "/api/ingest" for route in app.router.routes):
        return
    app.include_router(remote_routes.router)
    app.router.routes.sort(key=lambda route: isinstance(route, Mount))  # stable: mounts last


class CentralServer:
    """A traceyard server that remote-mode clients send to; restartable on its port."""

    def __init__(self, data_dir: Path, *, token: str | None = None, **overrides: Any) -> None:
        self.data_dir = data_dir
        self.token = token
        self.overrides = {"worker_batch_timeout": 0.05, **overrides}
        self.port = 0
        self.tracer: Tracer | None = None
        self.server: EmbeddedServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> CentralServer:
        with clean_routing_env():
            settings = load_settings(
                data_dir=self.data_dir,
                start_server=False,
                host="127.0.0.1",
                port=self.port,
                auth_token=self.token,
                **self.overrides,
            )
            self.tracer = Tracer(settings)
        assert self.tracer.store is not None
        state = ServerState(store=self.tracer.store, settings=settings, tracer=self.tracer)
        sock = bind_socket("127.0.0.1", self.port, attempts=1)
        self.server = EmbeddedServer(state, sock)
        include_remote_routes(self.server)
        self.server.start()
        self.port = self.server.port
        return self

    def stop(self) -> None:
        """As an operator's stop: no new requests, then what was accepted is made durable."""
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.tracer is not None:
            lost = self.tracer.stop()
            assert lost == 0, f"the central server lost {lost} accepted events at stop"
            self.tracer = None

    def observation_ids(self, project: str | None = None) -> list[str]:
        """Every stored observation id (with repeats, were any stored twice)."""
        assert self.tracer is not None and self.tracer.store is not None
        assert self.tracer.flush(30) == 0
        store = self.tracer.store
        ids: list[str] = []
        cursor = None
        while True:
            page = store.list_traces(TraceQuery(project=project, limit=500, cursor=cursor))
            for trace in page.data:
                detail = store.get_trace(trace.id)
                assert detail is not None
                ids.extend(o.id for o in detail.observations)
            cursor = page.next_cursor
            if cursor is None:
                return ids


@contextmanager
def central_server(data_dir: Path, **kwargs: Any) -> Iterator[CentralServer]:
    server = CentralServer(data_dir, **kwargs).start()
    try:
        yield server
    finally:
        server.stop()


def client_env(url: str, token: str | None = None, **settings: Any) -> dict[str, str]:
    """The environment of a client process in remote mode (no other TRACEYARD_ setting)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACEYARD_")}
    env["TRACEYARD_ENDPOINT"] = url
    env["TRACEYARD_START_SERVER"] = "false"
    env["TRACEYARD_STRICT"] = "1"
    env["PYTHONPATH"] = str(REPO / "tests")
    if token:
        env["TRACEYARD_AUTH_TOKEN"] = token
    for key, value in settings.items():
        env[f"TRACEYARD_{key.upper()}"] = str(value)
    return env


def spawn_client(script: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """A client process running ``script``; it talks to the test on stdin/stdout."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_message(process: subprocess.Popen[str]) -> dict[str, Any]:
    """The next JSON line a client printed; its stderr if it died instead."""
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.wait(10)
        stderr = process.stderr.read() if process.stderr else ""
        raise AssertionError(f"client {process.pid} exited ({process.returncode}):\n{stderr}")
    message: dict[str, Any] = json.loads(line)
    return message


def tell(process: subprocess.Popen[str], word: str) -> None:
    assert process.stdin is not None
    process.stdin.write(word + "\n")
    process.stdin.flush()

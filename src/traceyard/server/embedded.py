"""Running the server: in the app's process (a thread with its own event loop) or in front.

The embedded server never touches the app's event loop or threads: uvicorn runs on a thread of
its own with a fresh asyncio loop, and the only link to the app's hot path is none at all —
the live stream and the run links hang off the writer thread's batch listeners.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import socket
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import uvicorn

from traceyard.config import Settings
from traceyard.model import Entity, Event
from traceyard.server.app import create_app
from traceyard.server.auth import check_bind_safety
from traceyard.server.state import ServerState
from traceyard.store.base import Store

if TYPE_CHECKING:
    from traceyard.capture.tracer import Tracer

#: Ports tried after the configured one when it is taken.
PORT_ATTEMPTS = 100
_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 5.0
#: Seconds uvicorn gives open requests to finish when stopping.
GRACEFUL_SHUTDOWN_S = 2


def bind_socket(host: str, port: int, attempts: int = PORT_ATTEMPTS) -> socket.socket:
    """A listening-ready socket on ``host:port``, or on the next free port when it is taken.

    Binding here (rather than probing and letting uvicorn bind) leaves no window in which
    another process can take the port between the check and the bind.
    """
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    last_error: OSError | None = None
    candidates = [0] if port == 0 else range(port, min(port + attempts, 65536))
    for candidate in candidates:
        # IPPROTO_TCP, not 0: asyncio only sets TCP_NODELAY on sockets whose proto says TCP,
        # and without it every response waits ~40 ms for a delayed ACK (Nagle).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host.strip("[]"), candidate))
        except OSError as exc:
            sock.close()
            last_error = exc
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                continue
            raise
        sock.set_inheritable(False)
        # Listen now: a client that connects as soon as the URL is printed waits in the
        # backlog instead of being refused while uvicorn starts.
        sock.listen(2048)
        return sock
    raise OSError(f"no free port in {port}-{port + attempts - 1} on {host}") from last_error


def url_for(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def uvicorn_config(app: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        # The app's own loop policy (uvloop or not) is not ours to change.
        loop="none",
    )


class EmbeddedServer:
    """A uvicorn server on a background thread; ``stop()`` closes every connection."""

    def __init__(self, state: ServerState, sock: socket.socket) -> None:
        self.state = state
        self.app = create_app(state)
        self._socket = sock
        host, port = sock.getsockname()[:2]
        self.host: str = host
        self.port: int = port
        self.url = url_for(state.settings.host, port)
        state.base_url = self.url
        self._server = uvicorn.Server(uvicorn_config(self.app))
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self.start_seconds: float | None = None
        self.stop_seconds: float | None = None

    def start(self, timeout: float = _START_TIMEOUT_S) -> EmbeddedServer:
        started = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="traceyard-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"the traceyard server failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the traceyard server did not start within {timeout} s")
            time.sleep(0.002)
        self.start_seconds = time.perf_counter() - started
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._server.serve(sockets=[self._socket]))
        except BaseException as exc:  # reported through start()/stop(), not raised here
            self._error = exc
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._socket.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = _STOP_TIMEOUT_S) -> None:
        """Close the listener and every connection (WebSockets get close code 1001).
        Idempotent; never raises."""
        started = time.perf_counter()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            # Live clients first, so uvicorn does not wait for them to time out.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.state.hub.close)
        self._server.should_exit = True
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self.stop_seconds = time.perf_counter() - started


class RunLinkPrinter:
    """Batch listener: print each new trace's UI link to stderr, once (bounded memory)."""

    def __init__(self, base_url: str, remember: int = 10_000) -> None:
        self.base_url = base_url
        self.remember = remember
        self._printed: OrderedDict[str, None] = OrderedDict()

    def __call__(self, events: Sequence[Event]) -> None:
        names: dict[str, str | None] = {}
        for event in events:
            trace_id = event.trace_id
            if not trace_id or trace_id in self._printed:
                continue
            name = names.get(trace_id)
            if event.entity is Entity.TRACE or (
                event.entity is Entity.OBSERVATION and event.fields.get("parent_id") is None
            ):
                name = name or event.fields.get("name")
            names[trace_id] = name
        for trace_id, name in names.items():
            self._printed[trace_id] = None
            if len(self._printed) > self.remember:
                self._printed.popitem(last=False)
            label = f" {name}" if name else ""
            print(f"traceyard: run{label} → {self.base_url}#/traces/{trace_id}", file=sys.stderr)


def start_embedded(tracer: Tracer) -> EmbeddedServer | None:
    """Start the server for a running tracer (called by ``Tracer.create()``); None when the
    tracer keeps no local store (it sends to a remote server, which serves the UI)."""
    settings = tracer.settings
    check_bind_safety(settings.host, settings.auth_token)
    if tracer.store is None:
        return None
    state = ServerState(store=tracer.store, settings=settings, tracer=tracer)
    sock = bind_socket(settings.host, settings.port)
    server = EmbeddedServer(state, sock).start()
    moved = (
        ""
        if server.port == settings.port or settings.port == 0
        else (f" (port {settings.port} was taken)")
    )
    print(f"traceyard: UI at {server.url}{moved}", file=sys.stderr)
    if settings.print_run_url:
        tracer.add_batch_listener(RunLinkPrinter(server.url))
    return server


def serve_forever(
    settings: Settings, store: Store, tracer: Tracer | None = None, *, poll_store: bool = True
) -> None:
    """``traceyard serve``: run the server in front until Ctrl-C (uvicorn handles signals)."""
    check_bind_safety(settings.host, settings.auth_token)
    state = ServerState(store=store, settings=settings, tracer=tracer, poll_store=poll_store)
    sock = bind_socket(settings.host, settings.port)
    port = sock.getsockname()[1]
    url = url_for(settings.host, port)
    state.base_url = url
    moved = (
        ""
        if port == settings.port or settings.port == 0
        else (f" (port {settings.port} was taken)")
    )
    print(f"traceyard: serving {store.backend} at {url}{moved}", file=sys.stderr)
    app = create_app(state)
    # A process that serves for good: what startup built (modules, the app, its schemas)
    # stays to the end. Frozen out of the collector's generations, it is not walked again by
    # the full collections that big responses set off (a 1,000-observation trace allocates
    # ~30,000 objects): bench/server_query_ab.py showed it in the detail's tail latency.
    gc.freeze()
    server = uvicorn.Server(uvicorn_config(app))
    try:
        asyncio.run(server.serve(sockets=[sock]))
    finally:
        sock.close()

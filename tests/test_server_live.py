"""The real server over loopback: embedded start/stop, the live stream, run links, polling."""

from __future__ import annotations

import base64
import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_server_support import loopback_server, make_state, seed
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from traceyard.capture.tracer import Tracer
from traceyard.store.base import TraceQuery
from traceyard.store.sqlite import SQLiteStore


def _wait_for(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("condition not met before the deadline")


def _changes(
    ws: ClientConnection, until: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """Collect change messages until ``until(changes)`` holds (bounded by recv timeouts)."""
    collected: list[dict[str, Any]] = []
    while not until(collected):
        frame = json.loads(ws.recv(timeout=10))
        if frame["type"] == "changes":
            collected.extend(frame["changes"])
    return collected


@pytest.fixture
def live_tracer(data_dir: Path) -> Tracer:
    tracer = Tracer.create(data_dir=data_dir, start_server=True, port=0, worker_batch_timeout=0.02)
    assert tracer.server is not None and tracer.server.running
    yield tracer
    tracer.stop()


def _ws_url(tracer: Tracer, query: str = "") -> str:
    return tracer.server.url.replace("http://", "ws://") + "api/ws" + query


def test_embedded_server_streams_changes_and_filters_by_trace(live_tracer: Tracer) -> None:
    with connect(_ws_url(live_tracer)) as everything:
        assert json.loads(everything.recv(timeout=5)) == {"type": "hello", "mode": "push"}
        with live_tracer.span("first") as first:
            pass
        with connect(_ws_url(live_tracer, f"?trace_id={first.trace_id}xx")) as other:
            other.recv(timeout=5)  # hello
            with live_tracer.span("second") as second, live_tracer.generation("llm", model="m"):
                pass
            live_tracer.score("quality", 0.5, trace_id=second.trace_id)
            seen = _changes(everything, lambda c: any(x["type"] == "score" for x in c))
            other.close()
    kinds = [(c["type"], c["action"], c.get("name")) for c in seen]
    assert ("trace", "created", "first") in kinds and ("trace", "created", "second") in kinds
    assert ("observation", "started", "llm") in kinds
    assert [c for c in seen if c["type"] == "observation" and c["action"] == "ended"]
    score = next(c for c in seen if c["type"] == "score")
    assert score["trace_id"] == second.trace_id and score["value"] == 0.5


def test_a_trace_filter_only_gets_its_trace(live_tracer: Tracer) -> None:
    with live_tracer.span("wanted") as wanted:
        pass
    live_tracer.flush()
    with connect(_ws_url(live_tracer, f"?trace_id={wanted.trace_id}")) as follower:
        follower.recv(timeout=5)
        with live_tracer.span("unrelated"):
            pass
        live_tracer.flush()
        live_tracer.score("late", 1.0, trace_id=wanted.trace_id)
        changes = _changes(follower, lambda c: any(x["type"] == "score" for x in c))
    # Frames arrive in order: had the unrelated trace leaked, it would come before the score.
    assert {c["trace_id"] for c in changes} == {wanted.trace_id}


def test_a_slow_client_is_dropped_and_never_slows_the_writer(live_tracer: Tracer) -> None:
    server = live_tracer.server
    # A client that completes the handshake and then never reads, with a tiny receive buffer.
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    hub = server.state.hub
    hub.client_backlog_bytes = 64 << 10  # drop sooner than the default 4 MiB
    raw.connect(("127.0.0.1", server.port))
    key = base64.b64encode(os.urandom(16)).decode()
    raw.sendall(
        (
            f"GET /api/ws HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    assert b"101" in raw.recv(1024).split(b"\r\n")[0]
    _wait_for(lambda: len(hub.clients) == 1)
    emitted = 0
    try:
        while hub.clients_dropped == 0:
            for _ in range(2000):
                with live_tracer.span("s" * 200):
                    pass
            emitted += 4000
            assert emitted < 2_000_000, "the slow client was never dropped"
            live_tracer.flush()
    finally:
        raw.close()
    assert live_tracer.flush() == 0
    stats = live_tracer.stats()
    assert stats.events_dropped == 0 and stats.events_processed >= emitted
    assert hub.clients_dropped == 1 and not hub.clients


def test_stop_closes_websockets_and_frees_the_port(data_dir: Path) -> None:
    tracer = Tracer.create(data_dir=data_dir, start_server=True, port=0)
    server = tracer.server
    with connect(_ws_url(tracer)) as ws:
        ws.recv(timeout=5)
        tracer.stop()
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert not server.running
    assert server.stop_seconds is not None and server.start_seconds is not None
    with socket.socket() as probe:
        # Nothing listens there any more (SO_REUSEADDR only gets past TIME_WAIT, not a
        # listener); the closed connections themselves may still be in TIME_WAIT.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", server.port))
        probe.listen()


def test_a_taken_port_moves_to_the_next_free_one(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        tracer = Tracer.create(data_dir=data_dir, start_server=True, port=taken)
        try:
            assert tracer.server.port != taken
            assert httpx.get(tracer.server.url + "api/health").json()["status"] == "ok"
        finally:
            tracer.stop()
    err = capsys.readouterr().err
    assert f"{tracer.server.url} (port {taken} was taken)" in err


def test_print_run_url_prints_each_root_run_once(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tracer = Tracer.create(
        data_dir=data_dir, start_server=True, port=0, print_run_url=True, worker_batch_timeout=0.02
    )
    try:
        with tracer.span("agent-run") as root, tracer.span("step"):
            pass
        tracer.flush()
        tracer.score("quality", 1.0, trace_id=root.trace_id)  # a later change to the same run
        tracer.flush()
        link = f"{tracer.server.url}#/traces/{root.trace_id}"
    finally:
        tracer.stop()
    err = capsys.readouterr().err
    assert err.count(link) == 1
    assert f"run agent-run → {link}" in err


def test_standalone_server_polls_a_store_written_by_someone_else(tracer: Tracer) -> None:
    state = make_state(tracer, poll_store=True, poll_interval_s=0.05)
    state.tracer = None  # the writer is elsewhere
    other_writer = SQLiteStore(tracer.settings.data_dir / "traceyard.db")
    try:
        with loopback_server(state) as server:
            url = server.url.replace("http://", "ws://") + "api/ws"
            with connect(url) as ws, connect(url + "?trace_id=trace-00000") as follower:
                assert json.loads(ws.recv(timeout=5))["mode"] == "poll"
                follower.recv(timeout=5)
                _wait_for(lambda: len(state.hub.clients) == 2)
                poller = state.poller
                assert poller is not None
                _wait_for(lambda: poller.rounds >= 1)  # the baseline is taken
                seeded = seed(other_writer, 3)
                created = _changes(ws, lambda c: len({x["trace_id"] for x in c}) >= 3)
                assert {c["trace_id"] for c in created} == {t.id for t in seeded}
                assert {c["action"] for c in created} == {"created"}
                # the follower sees the observations of its trace once they change
                from traceyard.model import Entity, Event

                other_writer.write(
                    [Event(Entity.OBSERVATION, "late-obs", "trace-00000", "alpha",
                           {"name": "late", "start_time": 1})]
                )  # fmt: skip
                followed = _changes(follower, lambda c: any(x.get("id") == "late-obs" for x in c))
                assert {c["trace_id"] for c in followed} == {"trace-00000"}
    finally:
        other_writer.close()


def test_the_server_applies_retention_settings_in_the_background(data_dir: Path) -> None:
    tracer = Tracer.create(data_dir=data_dir, start_server=False, retention_max_traces=4)
    try:
        state = make_state(tracer)
        seeded = seed(state.store, 10)
        with loopback_server(state):
            _wait_for(lambda: state.counters.retention_runs >= 1)
            left = {t.id for t in state.store.list_traces(TraceQuery(limit=100)).data}
        newest = sorted(seeded, key=lambda t: t.start_ns)[-4:]
        assert left == {t.id for t in newest}
        assert state.counters.retention_deleted == 6
    finally:
        tracer.stop()

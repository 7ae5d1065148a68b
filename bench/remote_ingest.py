"""Remote mode: throughput from 1 and 4 client processes to one server, and app-thread cost.

1. Throughput, accepted → durable. One traceyard server in a process of its own (uvicorn on
   127.0.0.1, a free port, SQLite in a temp dir, its own tracer making ingested batches
   durable, as ``traceyard serve`` does). Then 1, and then 4, client processes (multiprocessing
   ``spawn``) each run ``Tracer.create(endpoint=..., start_server=False)`` and emit spans
   through the direct API as fast as they can for ``--seconds``: traces of 10 spans, 20% with a
   20 KB input (the writer-ceiling shape). They then ``stop()``, which sends what is queued.
   The clock runs from the start signal to the moment the server's writer has committed every
   event the clients had delivered (``/api/stats``); durable spans are the observation rows
   the server's store gained. Each client's accounting is checked: kept (committed by its
   writer, i.e. accepted by the server) + dropped (queue full, or still queued when its stop
   timeout ran out) == emitted, the latter counted by the client itself.
2. App-thread cost per event in remote mode against the embedded SQLite tracer, in the same
   run and process: CPU time of the app thread (``time.thread_time()``) per event of
   ``with tracer.span("x"): pass`` (2 events) inside one long root span, rounds interleaved.

    uv run python bench/remote_ingest.py --seconds 15
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import multiprocessing
import os
import random
import secrets
import statistics
import tempfile
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnContext, SpawnProcess
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

import httpx
from _workload import BIG_BYTES, BIG_SHARE, prompt_text

import traceyard
from traceyard.config import load_settings
from traceyard.server.embedded import EmbeddedServer, bind_socket
from traceyard.server.state import ServerState

SPANS_PER_TRACE = 10
#: Events of one such trace: the root's trace event, then a start and an end per span.
EVENTS_PER_TRACE = 1 + 2 * SPANS_PER_TRACE
#: Settings of the environment that would route a process elsewhere: the bench sets its own.
ROUTING_VARS = (
    "TRACEYARD_ENDPOINT",
    "TRACEYARD_TRACING_MODE",
    "TRACEYARD_FORWARD_TARGETS",
    "TRACEYARD_AUTH_TOKEN",
    "TRACEYARD_DATABASE_URL",
)
COST_SPANS = 20_000
COST_ROUNDS = 5
_START_TIMEOUT_S = 60.0
_DURABLE_TIMEOUT_S = 120.0


# ---------------------------------------------------------------------- the workload


def _inputs(seed: int) -> Iterator[dict[str, str]]:
    """Span inputs, endlessly: 20% of them 20 KB (built once, so emitting costs no text work)."""
    rng = random.Random(seed)
    big = [{"prompt": prompt_text(rng, BIG_BYTES)} for _ in range(20)]
    pattern = [rng.choice(big) if rng.random() < BIG_SHARE else {"q": f"q{i}"} for i in range(500)]
    return itertools.cycle(pattern)


# ---------------------------------------------------------------------- the server process


def _clear_routing_env() -> None:
    for name in ROUTING_VARS:
        os.environ.pop(name, None)


def run_server(data_dir: str, token: str, conn: Connection) -> None:
    """The central server: sends its port, serves until told to stop (or the bench is gone),
    then stops and sends how many accepted events it lost at stop."""
    _clear_routing_env()
    settings = load_settings(
        data_dir=data_dir, start_server=False, host="127.0.0.1", port=0, auth_token=token
    )
    tracer = traceyard.Tracer(settings)
    assert tracer.store is not None, "the server could not open its store"
    state = ServerState(store=tracer.store, settings=settings, tracer=tracer)
    server = EmbeddedServer(state, bind_socket("127.0.0.1", 0, attempts=1))
    try:
        server.start()
        conn.send(server.port)
        parent = os.getppid()
        while not conn.poll(1.0):
            if os.getppid() != parent:  # the bench died without telling us
                return
        conn.recv()
    except (EOFError, OSError):
        return
    finally:
        server.stop()
        lost = tracer.stop()
        with contextlib.suppress(OSError):  # the bench may be gone
            conn.send(lost)


class ServerProcess:
    """The server's process, and its figures over HTTP."""

    def __init__(self, ctx: SpawnContext, data_dir: Path, token: str) -> None:
        self._conn, child_conn = ctx.Pipe()
        self.process = ctx.Process(
            target=run_server, args=(str(data_dir), token, child_conn), daemon=True
        )
        self.process.start()
        if not self._conn.poll(_START_TIMEOUT_S):
            raise RuntimeError("the server process did not start in time")
        port: int = self._conn.recv()
        self.url = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=10.0,
            trust_env=False,
        )

    def figures(self) -> tuple[int, int, dict[str, Any]]:
        """Events its writer has committed, observation rows in its store, its tracer stats."""
        response = self.http.get("/api/stats")
        response.raise_for_status()
        body = response.json()
        tracer: dict[str, Any] = body["tracer"]
        return int(tracer["events_processed"]), int(body["store"]["observations"]), tracer

    def stop(self) -> int | None:
        """Lost accepted events at the server's stop (None: it did not say in time)."""
        self.http.close()
        try:
            self._conn.send("stop")
            if self._conn.poll(60.0):
                lost: int = self._conn.recv()
                return lost
        except (EOFError, OSError):
            pass
        return None


# ---------------------------------------------------------------------- the client processes


def run_client(
    endpoint: str,
    token: str,
    seconds: float,
    stop_timeout: float,
    seed: int,
    go: MpEvent,
    results: Queue[dict[str, Any]],
) -> None:
    """One app process in remote mode, emitting traces at full speed, then its accounting."""
    _clear_routing_env()
    tracer = traceyard.Tracer.create(endpoint=endpoint, auth_token=token, start_server=False)
    inputs = _inputs(seed)
    names = [f"step-{i}" for i in range(SPANS_PER_TRACE - 1)]
    results.put({"ready": os.getpid()})
    if not go.wait(_START_TIMEOUT_S):
        tracer.stop(1.0)
        return
    traces = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        with tracer.span("agent run", input=next(inputs)):
            for name in names:
                with tracer.span(name, input=next(inputs)):
                    pass
        traces += 1
    emitted_at = time.time()
    lost_at_stop = tracer.stop(stop_timeout)
    stopped_at = time.time()
    stats = tracer.stats()
    remote = stats.remote or {}
    results.put(
        {
            "pid": os.getpid(),
            "spans": traces * SPANS_PER_TRACE,
            "emitted": traces * EVENTS_PER_TRACE,
            "kept": stats.events_processed,
            "dropped": stats.events_dropped,
            "sampled_out": stats.events_sampled_out,
            "lost_at_stop": lost_at_stop,
            "sent": int(remote.get("sent", 0)),
            "failed": int(remote.get("failed", 0)),
            "retried": int(remote.get("retried", 0)),
            "rejected": int(remote.get("rejected", 0)),
            "emitted_at": emitted_at,
            "stopped_at": stopped_at,
        }
    )


def throughput(
    ctx: SpawnContext,
    server: ServerProcess,
    token: str,
    n_clients: int,
    seconds: float,
    stop_timeout: float,
) -> None:
    """One phase: ``n_clients`` processes at full speed, then wait until all is durable."""
    base_events, base_obs, _ = server.figures()
    go = ctx.Event()
    results: Queue[dict[str, Any]] = ctx.Queue()
    clients: list[SpawnProcess] = [
        ctx.Process(
            target=run_client,
            args=(server.url, token, seconds, stop_timeout, 7 + i, go, results),
            daemon=True,
        )
        for i in range(n_clients)
    ]
    try:
        for client in clients:
            client.start()
        for _ in clients:
            results.get(timeout=_START_TIMEOUT_S)  # each says it is ready
        started = time.time()
        go.set()
        reports = [results.get(timeout=seconds + stop_timeout + _START_TIMEOUT_S) for _ in clients]
        for client in clients:
            client.join(30)
    finally:
        for client in clients:
            if client.is_alive():
                client.terminate()
                client.join(5)

    delivered = sum(r["sent"] for r in reports)
    deadline = time.monotonic() + _DURABLE_TIMEOUT_S
    while True:
        events, observations, server_stats = server.figures()
        durable_at = time.time()
        if events - base_events >= delivered or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    durable_events = events - base_events
    durable_spans = observations - base_obs
    elapsed = durable_at - started
    accepted_elapsed = max(r["stopped_at"] for r in reports) - started
    emit_elapsed = max(r["emitted_at"] for r in reports) - started

    emitted = sum(r["emitted"] for r in reports)
    kept = sum(r["kept"] for r in reports)
    dropped = sum(r["dropped"] for r in reports)
    lost_at_stop = sum(r["lost_at_stop"] for r in reports)
    spans = sum(r["spans"] for r in reports)
    mismatches = [
        f"pid {r['pid']}: kept {r['kept']:,} + dropped {r['dropped']:,} != emitted {r['emitted']:,}"
        for r in reports
        if r["kept"] + r["dropped"] + r["sampled_out"] != r["emitted"]
    ]
    label = f"{n_clients} client process{'es' if n_clients > 1 else ''}"
    print(f"\n== remote mode, {label}, {seconds:g} s of full-speed emitting ==")
    print(
        f"emitted: {spans:,} spans / {emitted:,} events in {emit_elapsed:.1f} s "
        f"({emitted / emit_elapsed:,.0f} events/s offered by the apps)"
    )
    print(
        f"clients: kept (accepted by the server) {kept:,} events, dropped {dropped:,} "
        f"({dropped / max(emitted, 1):.1%}; of which still queued at the stop timeout "
        f"{lost_at_stop:,}); HTTP attempts failed {sum(r['failed'] for r in reports):,}, "
        f"retried {sum(r['retried'] for r in reports):,}, "
        f"events rejected {sum(r['rejected'] for r in reports):,}"
    )
    print(
        "accounting kept + dropped == emitted: "
        + ("OK" if not mismatches else "MISMATCH " + "; ".join(mismatches))
    )
    print(
        f"accepted: {delivered:,} events delivered by the last client's stop() at "
        f"{accepted_elapsed:.1f} s → {delivered / accepted_elapsed:,.0f} events/s "
        f"({delivered - kept:,} of them are the writers' incomplete-trace marks for traces "
        f"that lost events)"
    )
    complete = "all" if durable_events >= delivered else f"ONLY {durable_events:,}"
    print(
        f"durable: {complete} delivered events committed at {elapsed:.1f} s; "
        f"{durable_spans:,} spans (observation rows) → {durable_spans / elapsed:,.0f} spans/s, "
        f"{durable_events / elapsed:,.0f} events/s; server p99 batch write "
        f"{server_stats.get('p99_write_latency_ms') or 0:.0f} ms, server queue dropped "
        f"{server_stats.get('events_dropped')}"
    )


# ---------------------------------------------------------------------- app-thread cost


def _cpu_us_per_event(tracer: traceyard.Tracer) -> tuple[float, float]:
    """App-thread CPU and wall µs per event of ``with tracer.span("x"): pass`` (2 events)."""
    with tracer.span("root"):
        cpu, wall = time.thread_time(), time.perf_counter()
        for _ in range(COST_SPANS):
            with tracer.span("x"):
                pass
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    events = COST_SPANS * 2
    return cpu / events * 1e6, wall / events * 1e6


def app_thread_cost(endpoint: str, token: str, data_dir: Path) -> None:
    """Both modes in this process, rounds interleaved (order alternating), each drained
    before the next round so neither's writer runs during the other's measurement."""
    common: dict[str, Any] = {
        "start_server": False,
        "per_run_event_cap": 10**9,
        "queue_maxsize": 10**7,
    }
    tracers = {
        "embedded SQLite": traceyard.Tracer.create(data_dir=str(data_dir), **common),
        "remote": traceyard.Tracer.create(endpoint=endpoint, auth_token=token, **common),
    }
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in tracers}
    not_durable = dict.fromkeys(tracers, 0)
    try:
        for round_ in range(COST_ROUNDS):
            names = list(tracers) if round_ % 2 == 0 else list(reversed(tracers))
            for name in names:
                samples[name].append(_cpu_us_per_event(tracers[name]))
                not_durable[name] += tracers[name].flush(120)
    finally:
        lost = {name: tracer.stop(60) for name, tracer in tracers.items()}
    print(
        f"\n== app-thread cost per event, `with tracer.span('x'): pass` "
        f"({COST_ROUNDS} rounds of {COST_SPANS:,} spans, median) =="
    )
    cpu: dict[str, float] = {}
    for name, tracer in tracers.items():
        cpu[name] = statistics.median(s[0] for s in samples[name])
        wall = statistics.median(s[1] for s in samples[name])
        stats = tracer.stats()
        print(
            f"{name:>15}: {cpu[name]:.2f} µs CPU (target <= 5), {wall:.2f} µs wall | "
            f"{stats.events_processed:,} events written, dropped {stats.events_dropped}, "
            f"not durable at a flush {not_durable[name]}, lost at stop {lost[name]}"
        )
    ratio = cpu["remote"] / cpu["embedded SQLite"]
    print(f"remote / embedded, app-thread CPU per event: {ratio:.2f}")


# ---------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=15.0, help="full-speed emitting")
    parser.add_argument(
        "--stop-timeout",
        type=float,
        default=120.0,
        help="each client's stop(timeout): what is still queued after it counts as dropped "
        "(4 full client queues of 100,000 events take ~60 s to drain on 2 cores)",
    )
    args = parser.parse_args()
    _clear_routing_env()
    ctx = multiprocessing.get_context("spawn")
    token = secrets.token_urlsafe(32)
    load_1, load_5, _ = os.getloadavg()
    print(f"{os.cpu_count()} CPUs, load average {load_1:.1f} (1 min) {load_5:.1f} (5 min)")
    with tempfile.TemporaryDirectory(prefix="traceyard-remote-bench-") as tmp:
        server: ServerProcess | None = None
        try:
            server = ServerProcess(ctx, Path(tmp) / "server", token)
            print(f"server: {server.url} (SQLite in {tmp}/server), pid {server.process.pid}")
            for n_clients in (1, 4):
                throughput(ctx, server, token, n_clients, args.seconds, args.stop_timeout)
            app_thread_cost(server.url, token, Path(tmp) / "embedded")
        finally:
            if server is not None:
                lost = server.stop()
                server.process.join(30)
                if server.process.is_alive():
                    server.process.terminate()
                    server.process.join(5)
                print(f"\nserver stopped, accepted events lost at its stop: {lost}")
    load_1, load_5, _ = os.getloadavg()
    print(f"load average after: {load_1:.1f} (1 min) {load_5:.1f} (5 min)")


if __name__ == "__main__":
    main()

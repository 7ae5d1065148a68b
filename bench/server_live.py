"""Live stream: fan-out of ~1,000 changes/s to 10 WebSocket clients, and the writer's
throughput with those clients connected vs none (same run, interleaved).

The tracer and its embedded server run in this process (as in an app); the 10 clients run in
a subprocess so their work does not count against the writer.

    uv run python bench/server_live.py --seconds 20
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from traceyard.capture.tracer import Tracer

CLIENTS_SCRIPT = r"""
import asyncio, json, sys, time
from datetime import datetime
import websockets

URL, N = sys.argv[1], int(sys.argv[2])
counts = [0] * N
lags = []

async def client(i):
    async with websockets.connect(URL, max_size=None) as ws:
        await ws.recv()
        print("ready", flush=True) if i == N - 1 else None
        async for frame in ws:
            now = time.time()
            for change in json.loads(frame).get("changes", []):
                counts[i] += 1
                started = change.get("start_time")
                if i == 0 and started and change["action"] == "started":
                    lags.append(now - datetime.fromisoformat(started).timestamp())

async def main():
    tasks = [asyncio.create_task(client(i)) for i in range(N)]
    await asyncio.sleep(0.2)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)  # wait until told to report
    print(json.dumps({"counts": counts, "lags": lags}), flush=True)
    for t in tasks:
        t.cancel()

asyncio.run(main())
"""


def start_clients(url: str, n: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CLIENTS_SCRIPT, url, str(n)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def stop_clients(proc: subprocess.Popen[str]) -> dict[str, list[float]]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("\n")
    proc.stdin.flush()
    result: dict[str, list[float]] = json.loads(proc.stdout.readline())
    proc.wait(10)
    return result


def paced(tracer: Tracer, seconds: float, changes_per_s: int) -> int:
    """~changes_per_s changes per second (each span: trace + started + ended = 3)."""
    spans_per_tick = changes_per_s / 3 / 100
    owed, emitted = 0.0, 0
    deadline = time.monotonic() + seconds
    next_tick = time.monotonic()
    while time.monotonic() < deadline:
        owed += spans_per_tick
        while owed >= 1:
            with tracer.span("paced"):
                pass
            owed -= 1
            emitted += 1
        next_tick += 0.01
        time.sleep(max(0.0, next_tick - time.monotonic()))
    tracer.flush()
    return emitted * 3


def burst(tracer: Tracer, spans: int) -> float:
    """Events/s through the whole pipeline: emit as fast as the writer takes them (backing
    off only while the queue is over 90% full, so nothing is dropped), until durable."""
    queue = tracer._queue
    limit = int(queue.maxsize * 0.9)
    before = tracer.stats().events_processed
    started = time.perf_counter()
    for _ in range(spans):
        while len(queue) > limit:
            time.sleep(0.001)
        with tracer.span("burst"):
            pass
    tracer.flush(120)
    elapsed = time.perf_counter() - started
    return (tracer.stats().events_processed - before) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--rate", type=int, default=1000, help="changes per second")
    parser.add_argument("--burst-spans", type=int, default=50_000)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="traceyard-live-")) / "data"
    tracer = Tracer.create(data_dir=data_dir, start_server=True, port=0, worker_batch_timeout=0.05)
    assert tracer.server is not None
    url = tracer.server.url.replace("http://", "ws://") + "api/ws"
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    clients = start_clients(url, args.clients)
    sent = paced(tracer, args.seconds, args.rate)
    time.sleep(1)  # let the last frames arrive before asking for the counts
    result = stop_clients(clients)
    counts, lags = result["counts"], sorted(result["lags"])
    print(f"\nfan-out: {sent:,} changes in {args.seconds:.0f} s ({sent / args.seconds:,.0f}/s) "
          f"to {args.clients} clients")  # fmt: skip
    print(f"  received per client: min {min(counts):,}, max {max(counts):,} "
          f"({100 * min(counts) / sent:.1f}% of sent); dropped clients: "
          f"{tracer.server.state.hub.clients_dropped}")  # fmt: skip
    if lags:
        p95 = lags[min(len(lags) - 1, int(0.95 * len(lags)))]
        print(
            f"  delivery lag (span start → client): p50 {statistics.median(lags) * 1000:.0f} ms,"
            f" p95 {p95 * 1000:.0f} ms (includes the writer's batch timeout of 50 ms)"
        )

    print(f"\nwriter throughput, {args.burst_spans:,} spans ({2 * args.burst_spans:,} events) "
          "as fast as possible, until durable:")  # fmt: skip
    without: list[float] = []
    with_clients: list[float] = []
    burst(tracer, 5000)  # warm-up
    # A B B A A B B A: the store grows run by run, and this order cancels that drift.
    for connected in (False, True, True, False, False, True, True, False):
        if connected:
            clients = start_clients(url, args.clients)
            with_clients.append(burst(tracer, args.burst_spans))
            stop_clients(clients)
        else:
            without.append(burst(tracer, args.burst_spans))
    a, b = statistics.median(without), statistics.median(with_clients)
    print(
        f"  no clients:        {a:,.0f} events/s  (runs: {', '.join(f'{x:,.0f}' for x in without)})"
    )
    print(f"  {args.clients} clients:        {b:,.0f} events/s  "
          f"(runs: {', '.join(f'{x:,.0f}' for x in with_clients)})")  # fmt: skip
    print(f"  with/without: {b / a:.2f} (target >= 0.90); events dropped: "
          f"{tracer.stats().events_dropped}")  # fmt: skip
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    server = tracer.server
    clients = start_clients(url, args.clients)  # stop() must close these too
    tracer.stop()
    stop_clients(clients)
    print(f"\nembedded server start: {server.start_seconds * 1000:.0f} ms (after imports); "
          f"stop with {args.clients} WebSocket clients connected: "
          f"{server.stop_seconds * 1000:.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main()

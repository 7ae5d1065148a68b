"""OTLP/HTTP ingestion at steady state, traceyard beside Arize Phoenix, same load, same run.

The load is otlp_ingest.py's (agent-shaped traces of 5 spans, 20% of spans with a 20 KB
input, protobuf requests of 500 spans) sent by a separate client process over 4 keep-alive
connections for a fixed time, as fast as each server takes it. Every request gets fresh
trace and span ids (a request counter written into the template's ids), so rows can be
counted. A 503/429 is a refusal: the client waits (Retry-After, else 1 s, as the OTel exporter
backs off) and sends the same body again.

The servers: traceyard embedded (``Tracer.create()``: one process, its writer queue),
``traceyard serve --ingest-workers N`` (worker processes commit each request before the 2xx;
``--ingest-workers 0`` leaves this row out) and Phoenix (``--skip-phoenix`` leaves it out).
For each server, one after the other (never two at once: 2 cores):

* warm-up ``--warmup`` s, then a window of ``--seconds`` s: *durable spans/s* is the rows the
  store gained during the window (sampled every 0.5 s: traceyard's store counters, Phoenix's
  ``MAX(spans.id)`` read-only), *accepted spans/s* the spans in 2xx answers within the window;
* then the client stops and the server gets ``--drain`` s to write what it accepted:
  *not durable* = accepted - stored at the end (lost, or still queued when we stopped waiting).

    uv run python bench/phoenix_ingest.py --warmup 20 --seconds 60
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _phoenix import VENV_DIR, ensure_venv, phoenix_server
from otlp_ingest import build_bodies, count_spans, read_bodies, serve_process, write_bodies

Samples = list[tuple[float, int]]  # (time.time(), rows durable)


# ------------------------------------------------------------------------------ the client


def client_main(url: str, bodies_path: Path, connections: int, seconds: float) -> None:
    """Runs in its own process: send fresh copies of the templates until the deadline."""
    import httpx
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    templates = [ExportTraceServiceRequest.FromString(b) for b in read_bodies(bodies_path)]
    lock = threading.Lock()
    counter = iter(range(1, 1 << 24))
    accepted: list[tuple[float, int]] = []
    refused = failed = 0
    failures: list[str] = []
    deadline = time.time() + seconds

    def fresh_body() -> tuple[bytes, int]:
        with lock:
            number = next(counter)
        request = ExportTraceServiceRequest()
        request.CopyFrom(templates[number % len(templates)])
        prefix, spans = number.to_bytes(3, "big"), 0
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                for span in scope.spans:
                    span.trace_id = prefix + span.trace_id[3:]
                    span.span_id = prefix + span.span_id[3:]
                    if span.parent_span_id:
                        span.parent_span_id = prefix + span.parent_span_id[3:]
                    spans += 1
        return request.SerializeToString(), spans

    def connection() -> None:
        nonlocal refused, failed
        nodelay = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]  # as urllib3 sets it
        client = httpx.Client(timeout=120, transport=httpx.HTTPTransport(socket_options=nodelay))
        headers = {"content-type": "application/x-protobuf"}
        while time.time() < deadline:
            body, spans = fresh_body()
            while time.time() < deadline:
                try:
                    answer = client.post(url, content=body, headers=headers)
                except httpx.HTTPError as error:
                    with lock:
                        failed += 1
                        failures.append(repr(error)[:200])
                    break
                if answer.status_code in (429, 503):
                    with lock:
                        refused += 1
                    time.sleep(float(answer.headers.get("retry-after", "1")))
                    continue
                with lock:
                    if answer.status_code < 300:
                        accepted.append((time.time(), spans))
                    else:
                        failed += 1
                        failures.append(f"{answer.status_code} {answer.text[:200]}")
                break
        client.close()

    threads = [threading.Thread(target=connection) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report = {"accepted": accepted, "refused": refused, "failed": failed, "failures": failures[:5]}
    print(json.dumps(report))


def run_client(url: str, bodies: Path, connections: int, seconds: float) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--client", url, "--bodies", str(bodies),
         "--connections", str(connections), "--seconds", str(seconds)],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"client failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


# ------------------------------------------------------------------------------ measuring


class Poller:
    """Samples a durable-row count every 0.5 s on a thread of its own."""

    def __init__(self, count: Callable[[], int]) -> None:
        self.count = count
        self.samples: Samples = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), self.count()))
            self._stop.wait(0.5)

    def stop(self) -> Samples:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.time(), self.count()))
        return self.samples

    def wait_until_idle(self, expected: int, idle_s: float, limit_s: float) -> None:
        """Until ``expected`` rows, no growth for ``idle_s``, or ``limit_s`` has passed."""
        started = last_change = time.time()
        last = -1
        while time.time() - started < limit_s:
            now, count = time.time(), self.count()
            if count != last:
                last, last_change = count, now
            if count >= expected or now - last_change > idle_s:
                return
            time.sleep(0.5)


def rows_at(samples: Samples, moment: float) -> float:
    """Rows durable at ``moment``, interpolated between samples."""
    times = [t for t, _ in samples]
    i = bisect.bisect_left(times, moment)
    if i == 0:
        return float(samples[0][1])
    if i >= len(samples):
        return float(samples[-1][1])
    (t0, c0), (t1, c1) = samples[i - 1], samples[i]
    return c0 + (c1 - c0) * (moment - t0) / (t1 - t0) if t1 > t0 else float(c1)


def summarize(
    report: dict[str, Any], samples: Samples, base: int, start: float, warmup: float,
    window: float,
) -> dict[str, Any]:  # fmt: skip
    begin, end = start + warmup, start + warmup + window
    accepted_total = sum(n for _, n in report["accepted"])
    in_window = sum(n for t, n in report["accepted"] if begin <= t < end)
    stored = samples[-1][1] - base
    return {
        "accepted_per_s": in_window / window,
        "durable_per_s": (rows_at(samples, end) - rows_at(samples, begin)) / window,
        "accepted": accepted_total,
        "stored": stored,
        "not_durable": accepted_total - stored,
        "refused": report["refused"],
        "failed": report["failed"],
        "failures": report["failures"],
    }


def measure(
    url: str, count: Callable[[], int], bodies: Path, connections: int, warmup: float,
    window: float, drain: float,
) -> dict[str, Any]:  # fmt: skip
    """Send to ``url`` for warm-up + window, wait for what was accepted, summarize."""
    poller = Poller(count)
    start = time.time()
    report = run_client(url, bodies, connections, warmup + window)
    expected = sum(n for _, n in report["accepted"])
    poller.wait_until_idle(expected, idle_s=20, limit_s=drain)
    samples = poller.stop()
    return summarize(report, samples, 0, start, warmup, window)


def bench_traceyard(
    bodies: Path, work: Path, connections: int, warmup: float, window: float, drain: float
) -> dict[str, Any]:
    from traceyard.capture.tracer import Tracer

    tracer = Tracer.create(data_dir=work, start_server=True, host="127.0.0.1", port=0)
    assert tracer.server is not None and tracer.store is not None
    store = tracer.store
    url = tracer.server.url.rstrip("/") + "/v1/traces"
    try:
        return measure(
            url, lambda: store.counts().observations, bodies, connections, warmup, window, drain
        )
    finally:
        tracer.stop()


def bench_serve(
    bodies: Path, work: Path, connections: int, warmup: float, window: float, drain: float,
    workers: int,
) -> dict[str, Any]:  # fmt: skip
    """``traceyard serve --ingest-workers N`` in a process of its own (2xx = committed)."""
    from traceyard.config import load_settings
    from traceyard.store.factory import open_store

    with serve_process(work, workers) as base:
        store = open_store(load_settings(data_dir=work))
        try:
            return measure(
                base + "/v1/traces", lambda: store.counts().observations, bodies, connections,
                warmup, window, drain,
            )  # fmt: skip
        finally:
            store.close()


def bench_phoenix(
    venv: Path, bodies: Path, work: Path, connections: int, warmup: float, window: float,
    drain: float,
) -> dict[str, Any]:  # fmt: skip
    with phoenix_server(venv, work) as server:
        database = work / "phoenix.db"

        def rows() -> int:
            # Span rowids are assigned in order and nothing is deleted: MAX(id) is the count,
            # read from the index without scanning 20 KB rows.
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as conn:
                return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM spans").fetchone()[0])

        url = f"{server.url}/v1/traces"
        result = measure(url, rows, bodies, connections, warmup, window, drain)
    # What Phoenix says at shutdown about spans it accepted and had not written.
    log = (work / "phoenix.log").read_text(errors="replace").splitlines()
    result["shutdown"] = [line.strip()[:300] for line in log if "pending" in line]
    return result


# ------------------------------------------------------------------------------ main


def _line(name: str, result: dict[str, Any]) -> str:
    return (
        f"{name:10} {result['accepted_per_s']:10,.0f} {result['durable_per_s']:10,.0f} "
        f"{result['accepted']:10,} {result['stored']:10,} {result['not_durable']:11,} "
        f"{result['refused']:8,} {result['failed']:7,} {result['failures'] or ''}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warmup", type=float, default=20)
    parser.add_argument("--seconds", type=float, default=60, help="the measured window")
    parser.add_argument("--drain", type=float, default=120, help="max wait for durability")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--template-spans", type=int, default=5000)
    parser.add_argument("--phoenix-venv", type=Path, default=VENV_DIR)
    parser.add_argument(
        "--ingest-workers", type=int, default=2, help="traceyard serve's row (0: no such row)"
    )
    parser.add_argument("--skip-phoenix", action="store_true", help="traceyard's rows only")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--bodies", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args.client, args.bodies, args.connections, args.seconds)
        return

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so the servers are stopped
    if not args.skip_phoenix:
        ensure_venv(args.phoenix_venv)
    work = Path(tempfile.mkdtemp(prefix="phoenix-ingest-"))
    try:
        templates = build_bodies(args.template_spans, 500)
        bodies = work / "bodies.bin"
        write_bodies(bodies, templates)
        spans = sum(count_spans(b) for b in templates)
        print(f"load: {len(templates)} template requests of 500 spans "
              f"({bodies.stat().st_size / 1e6 / spans * 1000:.1f} KB/span), fresh ids per request, "
              f"{args.connections} connections; warm-up {args.warmup:.0f} s, window "
              f"{args.seconds:.0f} s")  # fmt: skip
        header = (f"{'':10} {'accepted/s':>10} {'durable/s':>10} {'accepted':>10} "
                  f"{'stored':>10} {'not durable':>11} {'refused':>8} {'failed':>7}")  # fmt: skip
        results: dict[str, dict[str, Any]] = {}
        load_before = os.getloadavg()[0]
        (work / "traceyard").mkdir()
        results["traceyard"] = bench_traceyard(
            bodies, work / "traceyard", args.connections, args.warmup, args.seconds, args.drain
        )
        print(header + "\n" + _line("traceyard", results["traceyard"]), flush=True)
        if args.ingest_workers:
            (work / "serve").mkdir()
            results["serve"] = bench_serve(
                bodies, work / "serve", args.connections, args.warmup, args.seconds, args.drain,
                args.ingest_workers,
            )  # fmt: skip
            print(_line(f"serve -w{args.ingest_workers}", results["serve"]), flush=True)
            ratio = results["serve"]["durable_per_s"] / results["traceyard"]["durable_per_s"]
            print(f"  (traceyard serve --ingest-workers {args.ingest_workers}: {ratio:.2f}x the "
                  "embedded server, durable spans/s)")  # fmt: skip
        load_mid = os.getloadavg()[0]
        if not args.skip_phoenix:
            (work / "phoenix").mkdir()
            results["phoenix"] = bench_phoenix(
                args.phoenix_venv, bodies, work / "phoenix", args.connections, args.warmup,
                args.seconds, args.drain,
            )  # fmt: skip
            print(_line("phoenix", results["phoenix"]))
            for line in results["phoenix"]["shutdown"]:
                print(f"  phoenix log at stop: {line}")
            ours = max(r["durable_per_s"] for n, r in results.items() if n != "phoenix")
            theirs = results["phoenix"]["durable_per_s"]
            ratio_text = f"{ours / theirs:.1f}x" if theirs > 0 else "- (phoenix stored nothing)"
            print(f"traceyard (best row) / phoenix, durable spans/s at steady state: {ratio_text}")
        print(f"load average: {load_before:.1f} before, {load_mid:.1f} between, "
              f"{os.getloadavg()[0]:.1f} after ({os.cpu_count()} cores)")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

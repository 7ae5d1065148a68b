"""OTLP/HTTP ingestion throughput: accepted -> durable, from a separate client process.

The load: traces shaped like an LLM agent run (agent root, retriever, two chat generations
with GenAI usage attributes, a tool), 5 spans each, 20% of spans carrying a 20 KB input,
sent as OTLP/HTTP protobuf in requests of 500 spans (an OTel BatchSpanProcessor's batch) over
several keep-alive connections. 429/503 answers are retried after Retry-After, as the OTel
exporter does. Every span id is unique, so "durable" is checked by counting stored rows.

Figures printed (same run, same machine, same bodies):

* ``writer ceiling``: the same spans translated in-process and put straight on the queue
  (no HTTP): the most the pipeline behind the route could do.
* ``traceyard``: spans/s accepted (2xx) and spans/s durable (every row committed), lost, for
  the embedded server (``Tracer.create()``: one process, one writer) and for ``traceyard serve
  --ingest-workers N`` (worker processes decode, translate and commit each request; the
  server's process only reads bodies), with the ratio of the two.

Run: ``uv run python bench/otlp_ingest.py`` (``--spans 120000 --ingest-workers 2`` by default:
long enough that the first seconds, SQLite's page cache filling, weigh little).
Phoenix beside us at steady state: bench/phoenix_ingest.py.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SPANS_PER_TRACE = 5
BIG_INPUT_BYTES = 20_000
_WORDS = (
    "the customer asked about their invoice refund policy shipping delay order account password",
    "reset premium plan cancel upgrade support agent answer context document retrieved",
    "knowledge base article summary please help thanks error timeout",
)


# ------------------------------------------------------------------------------ the load


def _text(rng: random.Random, size: int) -> str:
    words: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(rng.choice(_WORDS).split())
        words.append(word)
        length += len(word) + 1
    return " ".join(words)[:size]


def build_bodies(spans: int, request_spans: int, seed: int = 7) -> list[bytes]:
    """Serialized ExportTraceServiceRequests; deterministic for a seed."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    rng = random.Random(seed)
    big_inputs = [_text(rng, BIG_INPUT_BYTES) for _ in range(16)]
    small_inputs = [_text(rng, 400) for _ in range(64)]

    def kv(key: str, value: Any) -> KeyValue:
        if isinstance(value, bool):
            return KeyValue(key=key, value=AnyValue(bool_value=value))
        if isinstance(value, int):
            return KeyValue(key=key, value=AnyValue(int_value=value))
        if isinstance(value, float):
            return KeyValue(key=key, value=AnyValue(double_value=value))
        return KeyValue(key=key, value=AnyValue(string_value=str(value)))

    bodies: list[bytes] = []
    traces_per_request = max(1, request_spans // SPANS_PER_TRACE)
    trace_counter = 0
    start = time.time_ns() - 3600 * 10**9
    while trace_counter * SPANS_PER_TRACE < spans:
        request = ExportTraceServiceRequest()
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.extend(
            [kv("service.name", "support-bot"), kv("deployment.environment.name", "bench")]
        )
        scope_spans = resource_spans.scope_spans.add()
        scope_spans.scope.name = "bench.genai"
        for _ in range(traces_per_request):
            if trace_counter * SPANS_PER_TRACE >= spans:
                break
            trace_counter += 1
            trace_id = trace_counter.to_bytes(16, "big")
            base = trace_counter * SPANS_PER_TRACE
            t0 = start + trace_counter * 1_000_000
            root_id = base.to_bytes(8, "big")
            question = rng.choice(small_inputs)
            shapes = [
                ("invoke_agent support-bot", None, {"gen_ai.operation.name": "invoke_agent",
                 "user.id": f"user-{trace_counter % 500}",
                 "session.id": f"s-{trace_counter % 2000}",
                 "input.value": question, "output.value": "resolved"}),
                ("retrieve docs", root_id, {"openinference.span.kind": "RETRIEVER",
                 "input.value": question, "output.value": rng.choice(small_inputs)}),
                ("chat gpt-4o-mini", root_id, {"gen_ai.operation.name": "chat",
                 "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 5200,
                 "gen_ai.usage.output_tokens": 180, "gen_ai.usage.cache_read.input_tokens": 1024,
                 "gen_ai.request.temperature": 0.2,
                 "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [
                     {"type": "text", "content": rng.choice(big_inputs)}]}]),
                 "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
                     {"type": "text", "content": rng.choice(small_inputs)}],
                     "finish_reason": "stop"}])}),
                ("execute_tool lookup", root_id, {"gen_ai.operation.name": "execute_tool",
                 "gen_ai.tool.name": "lookup", "gen_ai.tool.call.arguments": '{"id": 42}',
                 "gen_ai.tool.call.result": '{"status": "shipped"}'}),
                ("chat gpt-4o-mini", root_id, {"gen_ai.operation.name": "chat",
                 "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 600,
                 "gen_ai.usage.output_tokens": 90,
                 "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [
                     {"type": "text", "content": rng.choice(small_inputs)}]}]),
                 "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
                     {"type": "text", "content": "done"}], "finish_reason": "stop"}])}),
            ]  # fmt: skip
            for index, (name, parent, attributes) in enumerate(shapes):
                span = scope_spans.spans.add()
                span.trace_id = trace_id
                span.span_id = (base + index).to_bytes(8, "big")
                if parent is not None:
                    span.parent_span_id = parent
                span.name = name
                span.kind = 3 if name.startswith("chat") else 1
                span.start_time_unix_nano = t0 + index * 1000
                span.end_time_unix_nano = t0 + 5_000_000 - index * 1000
                span.attributes.extend(kv(k, v) for k, v in attributes.items())
        bodies.append(request.SerializeToString())
    return bodies


def write_bodies(path: Path, bodies: list[bytes]) -> None:
    with path.open("wb") as out:
        for body in bodies:
            out.write(struct.pack(">I", len(body)))
            out.write(body)


def read_bodies(path: Path) -> Iterator[bytes]:
    with path.open("rb") as source:
        while header := source.read(4):
            (size,) = struct.unpack(">I", header)
            yield source.read(size)


def count_spans(body: bytes) -> int:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest.FromString(body)
    return sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)


# ------------------------------------------------------------------------------ the client


def client_main(url: str, bodies_path: Path, connections: int, warmup: int) -> None:
    """Runs in its own process: send every body, print timings as JSON."""
    import httpx

    bodies = list(read_bodies(bodies_path))
    spans_per_body = [count_spans(body) for body in bodies]
    retries = 0
    failures: list[str] = []
    lock = threading.Lock()
    local = threading.local()

    def send(body: bytes) -> None:
        nonlocal retries
        client = getattr(local, "client", None)
        if client is None:
            # TCP_NODELAY as urllib3 (the OTel exporter's transport) sets it: without it the
            # body's last segment waits for a delayed ACK, ~40 ms per request.
            nodelay = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
            transport = httpx.HTTPTransport(socket_options=nodelay)
            client = local.client = httpx.Client(timeout=60, transport=transport)
        headers = {"content-type": "application/x-protobuf"}
        for _attempt in range(200):
            answer = client.post(url, content=body, headers=headers)
            if answer.status_code in (429, 502, 503, 504):
                with lock:
                    retries += 1
                time.sleep(float(answer.headers.get("retry-after", "1")))
                continue
            if answer.status_code >= 300:
                with lock:
                    failures.append(f"{answer.status_code} {answer.text[:200]}")
            return
        with lock:
            failures.append("gave up after 200 retries")

    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(send, bodies[:warmup]))
        started = time.time()
        list(pool.map(send, bodies[warmup:]))
        finished = time.time()
    print(
        json.dumps(
            {
                "started": started,
                "finished": finished,
                "timed_spans": sum(spans_per_body[warmup:]),
                "total_spans": sum(spans_per_body),
                "retries": retries,
                "failures": failures[:5],
                "failed": len(failures),
            }
        )
    )


def run_client(url: str, bodies_path: Path, connections: int, warmup: int) -> dict[str, Any]:
    result = subprocess.run(
        [
            sys.executable,
            __file__,
            "--client",
            url,
            "--bodies",
            str(bodies_path),
            "--connections",
            str(connections),
            "--warmup",
            str(warmup),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"client failed:\n{result.stdout}\n{result.stderr}")
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


# ------------------------------------------------------------------------------ the servers


def bench_writer_ceiling(bodies: list[bytes], data_dir: Path) -> float:
    """The same spans, translated in-process and put straight on the queue: spans/s durable."""
    from traceyard.capture.tracer import Tracer
    from traceyard.ingest.otlp import decode_request, translate

    events = []
    spans = 0
    for body in bodies:
        decoded = decode_request(body, "application/x-protobuf")
        spans += len(decoded.spans)
        events.extend(translate(decoded.spans, "default"))
    tracer = Tracer.create(data_dir=data_dir, start_server=False, queue_maxsize=len(events) + 1)
    started = time.perf_counter()
    for event in events:
        tracer._queue.put(event)
    assert tracer.flush(600) == 0
    elapsed = time.perf_counter() - started
    tracer.stop()
    return spans / elapsed


def bench_traceyard(
    bodies_path: Path, data_dir: Path, connections: int, warmup: int
) -> dict[str, Any]:
    from traceyard.capture.tracer import Tracer

    tracer = Tracer.create(data_dir=data_dir, start_server=True, host="127.0.0.1", port=0)
    assert tracer.server is not None and tracer.store is not None
    url = tracer.server.url.rstrip("/") + "/v1/traces"
    report = run_client(url, bodies_path, connections, warmup)
    assert tracer.flush(600) == 0
    durable_at = time.time()
    stored = tracer.store.counts().observations
    stats = tracer.stats()
    tracer.stop()
    return _rates(report, stored, durable_at) | {"queue_dropped": stats.events_dropped}


def _rates(report: dict[str, Any], stored: int, durable_at: float) -> dict[str, Any]:
    """The client's report with rows stored, lost, and spans/s accepted and durable."""
    return report | {
        "stored": stored,
        "lost": report["total_spans"] - stored,
        "accepted_per_s": report["timed_spans"] / (report["finished"] - report["started"]),
        "durable_per_s": report["timed_spans"] / (durable_at - report["started"]),
    }


@contextmanager
def serve_process(data_dir: Path, workers: int) -> Iterator[str]:
    """``traceyard serve --ingest-workers N`` in a process of its own; yields its base URL."""
    import httpx

    server = subprocess.Popen(
        [sys.executable, "-m", "traceyard.cli", "serve", "-d", str(data_dir), "--port", "0",
         "--ingest-workers", str(workers)],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stderr is not None
        found = re.search(r"(http://127\.0\.0\.1:\d+)/", server.stderr.readline())
        assert found, "traceyard serve printed no URL"
        threading.Thread(target=server.stderr.read, daemon=True).start()  # never let it fill
        base = found.group(1)
        for _ in range(600):  # ready once its workers have started
            try:
                if httpx.get(base + "/api/public/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(60)


def bench_serve(
    bodies_path: Path, data_dir: Path, connections: int, warmup: int, workers: int
) -> dict[str, Any]:
    """``traceyard serve --ingest-workers N``; durable = rows counted in the store."""
    from traceyard.config import load_settings
    from traceyard.store.factory import open_store

    with serve_process(data_dir, workers) as base:
        report = run_client(base + "/v1/traces", bodies_path, connections, warmup)
        store = open_store(load_settings(data_dir=data_dir))
        try:
            deadline = time.time() + 600
            while (stored := store.counts().observations) < report["total_spans"]:
                if time.time() > deadline:
                    break
                time.sleep(0.02)
            durable_at = time.time()
        finally:
            store.close()
    return _rates(report, stored, durable_at)


def _line(name: str, result: dict[str, Any]) -> str:
    return (
        f"{name}: {result['accepted_per_s']:,.0f} spans/s accepted, "
        f"{result['durable_per_s']:,.0f} spans/s durable, lost {result['lost']}, "
        f"429 retries {result['retries']}, failed requests {result['failed']} "
        f"{result['failures'] or ''}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=120_000)
    parser.add_argument("--request-spans", type=int, default=500)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=4, help="requests sent before timing")
    parser.add_argument("--ingest-workers", type=int, default=2, help="for traceyard serve")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--bodies", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args.client, args.bodies, args.connections, args.warmup)
        return

    work = Path(tempfile.mkdtemp(prefix="otlp-bench-"))
    try:
        bodies = build_bodies(args.spans, args.request_spans)
        bodies_path = work / "bodies.bin"
        write_bodies(bodies_path, bodies)
        size_mb = bodies_path.stat().st_size / 1e6
        total = sum(count_spans(body) for body in bodies)
        print(
            f"load: {total} spans in {len(bodies)} requests ({size_mb:.0f} MB protobuf), "
            f"{args.connections} connections, first {args.warmup} requests untimed"
        )
        ceiling = bench_writer_ceiling(bodies, work / "ceiling")
        print(f"writer ceiling (in-process, no HTTP): {ceiling:,.0f} spans/s durable")
        ours = bench_traceyard(bodies_path, work / "traceyard", args.connections, args.warmup)
        print(
            _line("traceyard embedded /v1/traces", ours)
            + f" ({ours['durable_per_s'] / ceiling:.0%} of the writer ceiling)"
        )
        workers = args.ingest_workers
        served = bench_serve(bodies_path, work / "serve", args.connections, args.warmup, workers)
        print(
            _line(f"traceyard serve --ingest-workers {workers}", served)
            + f" ({served['durable_per_s'] / ours['durable_per_s']:.2f}x embedded, durable)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

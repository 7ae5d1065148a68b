"""Query API on a big SQLite store: list/filter/detail/timeseries latency and server RSS.

Loads N traces (5 observations each, + one trace with 1,000 observations) through the store's
own write path in large batches, starts ``traceyard serve`` on it in a subprocess, and times
requests over loopback from this process (keep-alive client, warm-up first).

    uv run python bench/server_query.py                 # 200,000 traces / 1,000,000 obs
    uv run python bench/server_query.py --traces 20000  # a quick run
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx

from traceyard.model import Entity, Event, Level, ObservationType
from traceyard.store.base import Store
from traceyard.store.sqlite import SQLiteStore

NAMES = [f"agent-{i}" for i in range(20)]
MODELS = ["gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet", "llama-3-70b"]
TAGS = [f"tag-{i}" for i in range(10)]


def prompt_link(i: int, generation: str) -> dict[str, Any]:
    """Managed prompts named by generations: "qa-answer" v1 and v2 by half the traces each
    (v3 by one trace in 2,000: a fresh version), "planner" v1 by one trace in five."""
    if generation == "llm-answer":
        version = 3 if i % 2000 == 0 else 1 + i % 2
        return {"prompt_name": "qa-answer", "prompt_version": version}
    if i % 5 == 0:
        return {"prompt_name": "planner", "prompt_version": 1}
    return {}


def save_prompts(store: Store) -> None:
    for project in ("main", "side"):
        for version in (1, 2, 3, 4):
            store.save_prompt(project, "qa-answer", f"Answer {{{{question}}}} (v{version})")
        store.save_prompt(project, "planner", [{"role": "system", "content": "Plan."}], type="chat")


def load(data_dir: Path, traces: int, batch: int = 4000) -> float:
    """Write the data set into a SQLite data dir; returns seconds taken."""
    store = SQLiteStore.in_dir(data_dir)
    try:
        return fill(store, traces, batch)
    finally:
        store.close()


def fill(store: Store, traces: int, batch: int = 4000) -> float:
    """Write the data set through ``store``'s own write path; returns seconds taken."""
    rng = random.Random(7)
    now_ns = time.time_ns()
    span_ns = 7 * 86400 * 10**9
    started = time.perf_counter()
    events: list[Event] = []
    for i in range(traces):
        trace_id = f"{i:032x}"
        start = now_ns - span_ns + (span_ns * i) // traces
        latency = rng.randint(50, 20_000) * 10**6
        error = rng.random() < 0.03
        project = "main" if i % 10 else "side"
        needle = "needle" if i % 100 == 0 else "hay"
        events.append(Event(Entity.TRACE, trace_id, trace_id, project, {
            "name": NAMES[i % len(NAMES)],
            "user_id": f"user-{rng.randrange(1000)}",
            "session_id": f"session-{i // 10}",
            "tags": [TAGS[i % 10], TAGS[(i // 10) % 10]],
            "metadata": {"env": "prod" if i % 3 else "dev", "tenant": f"t{i % 50}"},
            "input": {"question": f"question {i} about {needle}"},
            "output": {"answer": f"answer {i}"},
        }))  # fmt: skip
        root = f"{i:015x}r"
        children = [
            (ObservationType.GENERATION, "llm-plan"),
            (ObservationType.TOOL, "search"),
            (ObservationType.RETRIEVER, "retrieve"),
            (ObservationType.GENERATION, "llm-answer"),
        ]
        events.append(Event(Entity.OBSERVATION, root, trace_id, project, {
            "type": ObservationType.CHAIN, "name": "run", "start_time": start,
            "end_time": start + latency}))  # fmt: skip
        for k, (kind, name) in enumerate(children):
            fields: dict[str, Any] = {
                "type": kind, "name": name, "parent_id": root,
                "start_time": start + k * latency // 5, "end_time": start + (k + 1) * latency // 5,
            }  # fmt: skip
            if kind is ObservationType.GENERATION:
                usage = {"input": rng.randint(100, 3000), "output": rng.randint(10, 500)}
                fields.update(model=MODELS[(i + k) % 4], usage=usage,
                              input=[{"role": "user", "content": "hi"}], output="ok")  # fmt: skip
                fields.update(prompt_link(i, name))
            if error and kind is ObservationType.TOOL:
                fields.update(level=Level.ERROR, status_message="tool failed")
            events.append(Event(Entity.OBSERVATION, f"{i:015x}{k}", trace_id, project, fields))
        if len(events) >= batch * 6:
            store.write(events)
            events = []
            if i % 20000 < batch:
                print(f"  loaded {i + 1:,} traces", file=sys.stderr, flush=True)
    # One big trace: 1,000 observations.
    big = "b" * 32
    start = now_ns - 3600 * 10**9
    events.append(Event(Entity.TRACE, big, big, "main", {"name": "big-trace"}))
    for k in range(1000):
        events.append(Event(Entity.OBSERVATION, f"big{k:012d}", big, "main", {
            "type": ObservationType.SPAN if k % 3 else ObservationType.GENERATION,
            "name": f"step-{k}", "parent_id": None if k == 0 else "big000000000000",
            "start_time": start + k * 10**6, "end_time": start + (k + 1) * 10**6,
            "input": {"k": k, "text": "x" * 200}, "output": {"ok": True},
            "model": "gpt-4o-mini" if k % 3 == 0 else None,
            "usage": {"input": 10, "output": 5} if k % 3 == 0 else None}))  # fmt: skip
    store.write(events)
    save_prompts(store)
    return time.perf_counter() - started


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return p50, p95


def time_get(client: httpx.Client, path: str, params: Any, reps: int) -> tuple[float, float, int]:
    for _ in range(3):
        client.get(path, params=params).raise_for_status()
    samples = []
    rows = 0
    for _ in range(reps):
        started = time.perf_counter()
        response = client.get(path, params=params)
        samples.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        body = response.json()
        rows = len(body.get("data", body.get("observations", [])))
    p50, p95 = percentiles(samples)
    return p50, p95, rows


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--traces", type=int, default=200_000)
    parser.add_argument("--reps", type=int, default=40)
    parser.add_argument("--data-dir", type=Path, default=None, help="reuse a loaded data dir")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="traceyard-bench-")
    data_dir = args.data_dir or Path(tmp) / "data"
    if not (data_dir / "traceyard.db").exists():
        seconds = load(data_dir, args.traces)
        print(f"loaded {args.traces:,} traces / {5 * args.traces + 1000:,} observations "
              f"in {seconds:.1f} s ({(6 * args.traces) / seconds:,.0f} events/s)")  # fmt: skip
    size = sum(p.stat().st_size for p in data_dir.iterdir() if p.is_file())
    print(f"data dir: {size / 2**20:.0f} MiB")
    port = 17842
    server = subprocess.Popen(
        [sys.executable, "-m", "traceyard.cli", "serve", "--data-dir", str(data_dir),
         "--port", str(port)],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "TRACEYARD_START_SERVER": "false"},
    )  # fmt: skip
    try:
        assert server.stderr is not None
        line = server.stderr.readline()
        url = line.strip().rsplit(" at ", 1)[1].split(" ")[0]
        client = httpx.Client(base_url=url, timeout=30)
        client.get("api/health").raise_for_status()
        rss_idle = rss_mb(server.pid)
        base50, base95, _ = time_get(client, "api/health", {}, args.reps)
        print(f"baseline GET /api/health (no store work): p50 {base50:.1f} ms, "
              f"p95 {base95:.1f} ms; load average now {os.getloadavg()[0]:.1f} on "
              f"{os.cpu_count()} cores")  # fmt: skip
        day_ago = (datetime.now(timezone.utc) - timedelta(days=1)).isoformat()
        cases: list[tuple[str, dict[str, Any]]] = [
            ("default view", {}),
            ("project", {"project": "side"}),
            ("name", {"name": "agent-7"}),
            ("user_id", {"user_id": "user-42"}),
            ("session_id", {"session_id": "session-1234"}),
            ("tags", {"tags": ["tag-3"]}),
            ("status=error", {"status": "error"}),
            ("level=ERROR", {"level": "ERROR"}),
            ("level=WARNING (none)", {"level": "WARNING"}),
            ("start_after 1 day", {"start_after": day_ago}),
            ("start_before 1 day", {"start_before": day_ago}),
            ("min_latency_ms", {"min_latency_ms": 15000}),
            ("max_latency_ms", {"max_latency_ms": 100}),
            ("min_cost", {"min_cost": 0.01}),
            ("model", {"model": "claude-3-5-sonnet"}),
            ("metadata", {"metadata": "tenant:t7"}),
            ("prompt v1 (50%)", {"prompt_name": "qa-answer", "prompt_version": 1}),
            ("prompt v3 (0.05%)", {"prompt_name": "qa-answer", "prompt_version": 3}),
            ("prompt v4 (none)", {"prompt_name": "qa-answer", "prompt_version": 4}),
            ("prompt name (20%)", {"prompt_name": "planner"}),
            ("text (1% match)", {"text": "needle"}),
            ("sort latency", {"sort": "latency"}),
            ("sort cost", {"sort": "cost"}),
            ("sort tokens", {"sort": "tokens"}),
        ]
        print(f"\nGET /api/traces first page (limit 50), {args.reps} requests each; "
              "targets p50 <= 30 ms, p95 <= 80 ms")  # fmt: skip
        print(f"{'case':26} {'p50 ms':>8} {'p95 ms':>8} {'rows':>5}")
        misses = []
        for label, params in cases:
            p50, p95, rows = time_get(client, "api/traces", params, args.reps)
            flag = "" if p50 <= 30 and p95 <= 80 else "  MISS"
            if flag:
                misses.append(label)
            print(f"{label:26} {p50:8.1f} {p95:8.1f} {rows:5}{flag}")
        p50, p95, rows = time_get(client, "api/traces/" + "b" * 32, {}, args.reps)
        print(f"\ntrace detail, {rows} observations: p50 {p50:.1f} ms, p95 {p95:.1f} ms "
              "(target <= 50 ms)")  # fmt: skip
        week_ago = datetime.now(timezone.utc) - timedelta(days=7)
        week = {"start": week_ago.isoformat()}
        # Buckets that are whole hours come from the hourly rollup; a start off the hour
        # splits every hourly bucket in two partial hours, read from the traces.
        on_the_hour = {"start": week_ago.replace(minute=0, second=0, microsecond=0).isoformat()}
        for label, params in (
            ("start on the hour", on_the_hour),
            ("start off the hour", week),
            ("one bucket", {**week, "interval_s": 7 * 86400}),
        ):
            p50, p95, rows = time_get(
                client, "api/metrics/timeseries", params, max(10, args.reps // 2)
            )
            print(f"timeseries 7 days, {label} ({rows} buckets): p50 {p50:.1f} ms, "
                  f"p95 {p95:.1f} ms (target <= 100 ms)")  # fmt: skip
        p50, p95, rows = time_get(
            client, "api/metrics/timeseries", {**week, "group_by": "model"}, max(5, args.reps // 4)
        )
        print(f"timeseries 7 days by model ({rows} points): p50 {p50:.1f} ms, p95 {p95:.1f} ms")
        for path, params in (("api/prompts", {}), ("api/prompts/qa-answer", {"project": "main"})):
            p50, p95, rows = time_get(client, path, params, max(5, args.reps // 4))
            print(f"{path}: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
        p50, p95, _ = time_get(client, "api/stats", {}, max(5, args.reps // 4))
        print(f"stats: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
        print(f"\nserver RSS: {rss_idle:.0f} MiB after start, {rss_mb(server.pid):.0f} MiB "
              "after the queries above")  # fmt: skip
        if misses:
            print("list cases over target: " + ", ".join(misses))
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()

"""Trace list and trace detail latency, traceyard beside Arize Phoenix, on the same data set.

The data set is server_query.py's (200,000 traces of 5 spans + one 1,000-span trace over the
last 7 days). traceyard gets it through ``server_query.load`` (its store's write path);
Phoenix gets it through ``phoenix_load.py`` in Phoenix's venv (its OTLP decoding, its cost
calculator, its schema; see that file, and ``--check`` there for the proof that the rows equal
what its BulkInserter writes). Then each server runs alone, one after the other, on
127.0.0.1, and this process times requests over loopback (keep-alive client, warm-up first):

* traceyard: ``GET /api/traces`` (limit 50) for each case, ``GET /api/traces/{id}`` for the
  1,000-span trace; baseline ``GET /api/health``.
* Phoenix: the GraphQL documents its own UI sends (read from its installed bundle):
  ``TracesTableQuery`` (the Traces tab: root spans, first 50, their descendants, costs and
  annotations) with the matching ``traceFilterCondition``/``timeRange``/``sort``, and
  ``TraceDetailsQuery`` (the trace view) for the 1,000-span trace; baseline ``GET /healthz``.

    uv run python bench/phoenix_query.py                       # load both, then measure
    uv run python bench/phoenix_query.py --ours D1 --phoenix D2  # reuse loaded data dirs
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
from _phoenix import VENV_DIR, ensure_venv, free_port, phoenix_server, ui_queries, venv_env
from _query_dataset import BIG_TRACE_ID
from server_query import load, percentiles, rss_mb

BENCH_DIR = Path(__file__).resolve().parent


@dataclass
class Case:
    """One list request: our query parameters and Phoenix's equivalent (None: no equivalent)."""

    label: str
    ours: dict[str, Any]
    theirs: dict[str, Any] | None
    project: str = "main"  # Phoenix lists one project at a time


def cases(now: datetime) -> list[Case]:
    day_ago = (now - timedelta(days=1)).isoformat()
    return [
        Case("default view", {}, {}),
        Case("project", {"project": "side"}, {}, project="side"),
        Case("name", {"name": "agent-7"}, {"tfc": 'any("agent-7" in span.name for span in spans)'}),
        Case("user_id", {"user_id": "user-42"}, {"tfc": 'user.id == "user-42"'}),
        Case("session_id", {"session_id": "session-1234"},
             {"tfc": 'attributes["session.id"] == "session-1234"'}),
        Case("tags", {"tags": ["tag-3"]}, {"tfc": '"tag-3" in attributes["tag.tags"]'}),
        Case("status=error", {"status": "error"}, {"tfc": "error_count > 0"}),
        Case("start_after 1 day", {"start_after": day_ago}, {"start": day_ago}),
        Case("start_before 1 day", {"start_before": day_ago}, {"end": day_ago}),
        Case("min_latency_ms", {"min_latency_ms": 15000}, {"tfc": "latency_ms >= 15000"}),
        Case("max_latency_ms", {"max_latency_ms": 100}, {"tfc": "latency_ms <= 100"}),
        Case("min_cost", {"min_cost": 0.01}, {"tfc": "total_cost >= 0.01"}),
        Case("model", {"model": "claude-3-5-sonnet"}, None),
        Case("metadata", {"metadata": "tenant:t7"}, {"tfc": 'metadata["tenant"] == "t7"'}),
        # Every 100th trace has the needle, and all of them are in project "side".
        Case("text (1% match)", {"text": "needle"}, {"tfc": '"needle" in input'}, "side"),
        Case("sort latency", {"sort": "latency"}, {"sort": "latencyMs"}),
        Case("sort cost", {"sort": "cost"}, {"sort": "cumulativeTokenCostTotal"}),
        Case("sort tokens", {"sort": "tokens"}, {"sort": "cumulativeTokenCountTotal"}),
    ]  # fmt: skip


Timing = tuple[float, float, int, int]  # p50 ms, p95 ms, rows, requests timed


def time_calls(
    call: Callable[[], int], reps: int, warmup: int = 2, budget_s: float = float("inf")
) -> Timing:
    """p50/p95 of ``reps`` calls after ``warmup`` (fewer, but at least 3, once ``budget_s``
    is spent); ``call`` returns the rows it got."""
    for _ in range(warmup):
        call()
    samples: list[float] = []
    rows = 0
    deadline = time.perf_counter() + budget_s
    while len(samples) < reps and (len(samples) < 3 or time.perf_counter() < deadline):
        started = time.perf_counter()
        rows = call()
        samples.append((time.perf_counter() - started) * 1000)
    p50, p95 = percentiles(samples)
    return p50, p95, rows, len(samples)


# ------------------------------------------------------------------------------ traceyard


def measure_ours(data_dir: Path, now: datetime, reps: int) -> dict[str, Any]:
    server = subprocess.Popen(
        [sys.executable, "-m", "traceyard.cli", "serve", "--data-dir", str(data_dir),
         "--port", str(free_port())],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "TRACEYARD_START_SERVER": "false"},
    )  # fmt: skip
    try:
        assert server.stderr is not None
        line = server.stderr.readline()
        url = line.strip().rsplit(" at ", 1)[1].split(" ")[0]
        client = httpx.Client(base_url=url, timeout=120)

        def get(path: str, params: dict[str, Any] | None = None) -> int:
            response = client.get(path, params=params)
            response.raise_for_status()
            body = response.json()
            return len(body.get("data", body.get("observations", [])))

        out: dict[str, Any] = {"baseline": time_calls(lambda: get("api/health"), reps)}
        out["load_before"] = os.getloadavg()[0]
        for case in cases(now):
            out[case.label] = time_calls(lambda c=case: get("api/traces", c.ours), reps)  # type: ignore[misc]
        out["detail"] = time_calls(lambda: get("api/traces/" + BIG_TRACE_ID), reps)
        out["rss_mb"] = rss_mb(server.pid)
        out["load_after"] = os.getloadavg()[0]
        return out
    finally:
        server.terminate()
        server.wait(30)


# ------------------------------------------------------------------------------ Phoenix


class PhoenixUi:
    """Phoenix's GraphQL endpoint, asked what its UI asks."""

    def __init__(self, url: str, queries: dict[str, str]) -> None:
        self.client = httpx.Client(base_url=url, timeout=600)
        self.queries = queries
        found = self.post("{ projects { edges { node { id name } } } }", {})
        self.projects = {e["node"]["name"]: e["node"]["id"] for e in found["projects"]["edges"]}

    def post(self, query: str, variables: dict[str, Any]) -> Any:
        response = self.client.post("/graphql", json={"query": query, "variables": variables})
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(f"phoenix graphql errors: {json.dumps(body['errors'])[:500]}")
        return body["data"]

    def trace_list(self, case: Case, now: datetime) -> int:
        assert case.theirs is not None
        # The UI always sends a time range; its default is the last 7 days.
        time_range = {"start": (now - timedelta(days=7)).isoformat()}
        if "start" in case.theirs:
            time_range = {"start": case.theirs["start"]}
        if "end" in case.theirs:
            time_range = {"start": time_range["start"], "end": case.theirs["end"]}
        variables: dict[str, Any] = {
            "id": self.projects[case.project], "first": 50, "timeRange": time_range,
            "sort": {"col": case.theirs.get("sort", "startTime"), "dir": "desc"},
        }  # fmt: skip
        if "tfc" in case.theirs:
            variables["traceFilterCondition"] = case.theirs["tfc"]
        data = self.post(self.queries["TracesTableQuery"], variables)
        return len(data["node"]["rootSpans"]["edges"])

    def minimal_list(self) -> int:
        """Not a UI query: the first 50 root spans' ids and names only, newest first, to
        tell the list query itself from the fields the UI asks for on each row."""
        query = (
            "query($id: ID!) { node(id: $id) { ... on Project { spans(first: 50, "
            'sort: {col: startTime, dir: desc}, filterCondition: "parent_span is None") '
            "{ edges { node { id name } } } } } }"
        )
        return len(self.post(query, {"id": self.projects["main"]})["node"]["spans"]["edges"])

    def trace_detail(self, trace_id: str) -> int:
        variables = {"id": self.projects["main"], "traceId": trace_id}
        data = self.post(self.queries["TraceDetailsQuery"], variables)
        return len(data["project"]["trace"]["spans"]["edges"])


def measure_phoenix(
    venv: Path, work: Path, now: datetime, reps: int, budget_s: float
) -> dict[str, Any]:
    queries = ui_queries(venv)
    with phoenix_server(venv, work) as server:
        ui = PhoenixUi(server.url, queries)
        health = httpx.Client(base_url=server.url, timeout=60)

        def healthz() -> int:
            health.get("/healthz").raise_for_status()
            return 0

        out: dict[str, Any] = {"baseline": time_calls(healthz, reps)}
        out["load_before"] = os.getloadavg()[0]
        for case in cases(now):
            if case.theirs is not None:
                list_case = lambda c=case: ui.trace_list(c, now)  # type: ignore[misc]  # noqa: E731
                out[case.label] = time_calls(list_case, reps, 1, budget_s)
                print(f"  phoenix {case.label}: {out[case.label]}", file=sys.stderr, flush=True)
        out["detail"] = time_calls(lambda: ui.trace_detail(BIG_TRACE_ID), reps, 1, budget_s)
        out["minimal"] = time_calls(ui.minimal_list, reps, 1, budget_s)
        out["rss_mb"] = rss_mb(server.process.pid)
        out["load_after"] = os.getloadavg()[0]
        return out


def load_phoenix(python: Path, work: Path, traces: int, now_ns: int) -> float:
    work.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [str(python), "-W", "ignore", str(BENCH_DIR / "phoenix_load.py"), "--db",
         str(work / "phoenix.db"), "--traces", str(traces), "--now-ns", str(now_ns)],
        stdout=subprocess.PIPE, text=True, env=venv_env(), cwd=BENCH_DIR,
    )  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"phoenix load failed ({done.returncode})")
    seconds: float = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
    return seconds


# ------------------------------------------------------------------------------ main


def _cell(timing: Timing | None) -> str:
    if timing is None:
        return "n/a"
    return f"{timing[0]:8.1f} {timing[1]:8.1f} {timing[2]:4} {timing[3]:3}"


def report(ours: dict[str, Any], theirs: dict[str, Any], now: datetime) -> None:
    print(f"\n{'':22} {'traceyard p50 p95 ms rows n':>31} {'Phoenix p50 p95 ms rows n':>31}"
          f" {'p50 ratio':>9}")  # fmt: skip
    rows = [("baseline (health)", "baseline")] + [(c.label, c.label) for c in cases(now)]
    rows.append(("detail, 1,000 spans", "detail"))
    rows.append(("list, ids+names only", "minimal"))
    for label, key in rows:
        mine, peer = ours.get(key), theirs.get(key)
        ratio = f"{peer[0] / mine[0]:8.1f}x" if mine and peer else "       -"
        print(f"{label:22} {_cell(mine):>31} {_cell(peer):>31} {ratio}")
    print(f"\nserver RSS after the queries: traceyard {ours['rss_mb']:.0f} MiB, "
          f"Phoenix {theirs['rss_mb']:.0f} MiB")  # fmt: skip
    print(f"load average: traceyard {ours['load_before']:.1f} -> {ours['load_after']:.1f}, "
          f"Phoenix {theirs['load_before']:.1f} -> {theirs['load_after']:.1f} "
          f"({os.cpu_count()} cores)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=int, default=200_000)
    parser.add_argument("--reps", type=int, default=40, help="timed requests per case, ours")
    parser.add_argument("--phoenix-reps", type=int, default=10, help="the same for Phoenix")
    parser.add_argument("--phoenix-budget", type=float, default=60, help="max s per case")
    parser.add_argument("--ours", type=Path, help="a loaded traceyard data dir to reuse")
    parser.add_argument("--phoenix", type=Path, help="a loaded Phoenix working dir to reuse")
    parser.add_argument("--phoenix-venv", type=Path, default=VENV_DIR)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so the servers are stopped
    python = ensure_venv(args.phoenix_venv)
    tmp = Path(tempfile.mkdtemp(prefix="phoenix-query-"))
    ours_dir, phoenix_dir = args.ours or tmp / "traceyard", args.phoenix or tmp / "phoenix"
    now_ns = time.time_ns()
    if not (ours_dir / "traceyard.db").exists():
        seconds = load(ours_dir, args.traces)
        print(f"traceyard: loaded {args.traces:,} traces in {seconds:.0f} s")
    if not (phoenix_dir / "phoenix.db").exists():
        seconds = load_phoenix(python, phoenix_dir, args.traces, now_ns)
        print(f"phoenix: loaded {args.traces:,} traces in {seconds:.0f} s")
    now = datetime.now(timezone.utc)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; measuring traceyard")
    ours = measure_ours(ours_dir, now, args.reps)
    print(f"load average {os.getloadavg()[0]:.1f}; measuring Phoenix")
    theirs = measure_phoenix(
        args.phoenix_venv, phoenix_dir, now, args.phoenix_reps, args.phoenix_budget
    )
    report(ours, theirs, now)


if __name__ == "__main__":
    main()

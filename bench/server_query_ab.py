"""Query API of two traceyard builds side by side, requests interleaved (A, B, A, B, ...).

On a shared, loaded machine two runs minutes apart are not comparable; interleaving puts both
servers under the same load, so the ratio B/A is the figure to read. Each side is a Python
that has its own traceyard installed (e.g. the .venv of a git worktree at the baseline
commit) and a data dir loaded by server_query.py (a copy per side: a newer build migrates
the schema on open, and an older one then refuses the file).

    uv run python bench/server_query_ab.py \\
        --a /tmp/wt-base/.venv/bin/python /tmp/data-base --b .venv/bin/python /tmp/data-new
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
from server_query import percentiles


@contextmanager
def serve(python: str, data_dir: Path, port: int) -> Iterator[httpx.Client]:
    server = subprocess.Popen(
        [python, "-m", "traceyard.cli", "serve", "--data-dir", str(data_dir), "--port", str(port)],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "TRACEYARD_START_SERVER": "false"},
    )  # fmt: skip
    try:
        assert server.stderr is not None
        line = server.stderr.readline()
        url = line.strip().rsplit(" at ", 1)[1].split(" ")[0]
        with httpx.Client(base_url=url, timeout=60) as client:
            client.get("api/health").raise_for_status()
            yield client
    finally:
        server.terminate()
        server.wait(10)


def interleaved(clients: list[httpx.Client], path: str, params: Any, reps: int) -> list[Any]:
    samples: list[list[float]] = [[] for _ in clients]
    for client in clients:
        for _ in range(3):
            client.get(path, params=params).raise_for_status()
    for _ in range(reps):
        for client, mine in zip(clients, samples, strict=True):
            started = time.perf_counter()
            client.get(path, params=params).raise_for_status()
            mine.append((time.perf_counter() - started) * 1000)
    return [percentiles(s) for s in samples]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--a", nargs=2, metavar=("PYTHON", "DATA_DIR"), required=True)
    parser.add_argument("--b", nargs=2, metavar=("PYTHON", "DATA_DIR"), required=True)
    parser.add_argument("--reps", type=int, default=30)
    args = parser.parse_args()
    now = datetime.now(timezone.utc)
    week_ago = now - timedelta(days=7)
    hour_ago = (now - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    on_the_hour = week_ago.replace(minute=0, second=0, microsecond=0).isoformat()
    cases: list[tuple[str, str, dict[str, Any], int]] = [
        ("health (baseline)", "api/health", {}, args.reps),
        ("list: default view", "api/traces", {}, args.reps),
        ("list: level=WARNING (none)", "api/traces", {"level": "WARNING"}, args.reps),
        ("list: level=ERROR", "api/traces", {"level": "ERROR"}, args.reps),
        ("list: level=DEFAULT", "api/traces", {"level": "DEFAULT"}, args.reps),
        ("trace detail, 1,000 observations", "api/traces/" + "b" * 32, {}, args.reps),
        ("timeseries 7 d, start on the hour", "api/metrics/timeseries",
         {"start": on_the_hour}, args.reps // 2),
        ("timeseries 7 d, start off the hour", "api/metrics/timeseries",
         {"start": week_ago.isoformat()}, args.reps // 2),
        ("timeseries 7 d, one bucket", "api/metrics/timeseries",
         {"start": week_ago.isoformat(), "interval_s": 7 * 86400}, args.reps // 2),
        ("timeseries 1 h, by minute", "api/metrics/timeseries",
         {"start": hour_ago.isoformat(), "interval_s": 60}, args.reps // 2),
    ]  # fmt: skip
    with ExitStack() as stack:
        a = stack.enter_context(serve(args.a[0], Path(args.a[1]), 17851))
        b = stack.enter_context(serve(args.b[0], Path(args.b[1]), 17852))
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; A = {args.a}, "
              f"B = {args.b}")  # fmt: skip
        print(f"{'case':36} {'A p50':>8} {'A p95':>8} {'B p50':>8} {'B p95':>8} {'B/A p50':>8}")
        for label, path, params, reps in cases:
            (a50, a95), (b50, b95) = interleaved([a, b], path, params, max(reps, 5))
            print(f"{label:36} {a50:8.1f} {a95:8.1f} {b50:8.1f} {b95:8.1f} {b50 / a50:8.2f}")
        print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

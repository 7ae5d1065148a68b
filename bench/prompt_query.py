"""The prompt reads beside each other on SQLite and PostgreSQL, in-process through the stores:
the trace listing filtered by prompt (common, rare and absent versions, by name alone, with a
project) and the per-version usage counts the prompt pages show.

    uv run python bench/prompt_query.py --sqlite-dir D   # D: a server_query.py data dir
    uv run python bench/prompt_query.py --sqlite-dir D --traces 200000

The data set is bench/server_query.py's (its ``fill``): 200,000 traces x 5 observations in two
projects, generations naming "qa-answer" v1/v2 (half the traces each, v3 in one trace of
2,000) and "planner" v1 (one in five). PostgreSQL gets the same data through its own write
path into a scratch schema kept between runs (``--reload`` rebuilds it).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from postgres_common import ADMIN_URL, load_average, scratch_schema
from server_query import fill, load

from traceyard.server.routes_prompts import USAGE_COUNT_LIMIT
from traceyard.store.base import Store, TraceQuery, TraceSort
from traceyard.store.postgres import PostgresStore
from traceyard.store.sqlite import SQLiteStore

PG_SCHEMA = "bench_prompt_query"

QA = "qa-answer"
CASES: list[tuple[str, dict[str, Any] | tuple[str | None, str | None]]] = [
    ("list, no filter (baseline)", {}),
    ("list, prompt v1 (50%)", {"prompt_name": QA, "prompt_version": 1}),
    ("list, prompt v3 (0.05%)", {"prompt_name": QA, "prompt_version": 3}),
    ("list, prompt v4 (none)", {"prompt_name": QA, "prompt_version": 4}),
    ("list, prompt name (20%)", {"prompt_name": "planner"}),
    ("list, v3 + project main (none)", {"prompt_name": QA, "prompt_version": 3, "project": "main"}),
    ("list, v1 sorted by cost", {"prompt_name": QA, "prompt_version": 1, "sort": TraceSort.COST}),
    ("usage, all prompts (≤ 10,000 each)", (None, None)),
    ("usage, one prompt in a project", ("main", QA)),
]


def run(store: Store, case: dict[str, Any] | tuple[str | None, str | None]) -> Any:
    if isinstance(case, dict):
        return store.list_traces(TraceQuery(**case))
    return store.prompt_usage(*case, limit=USAGE_COUNT_LIMIT)


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, float]:
    fn()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return statistics.median(samples), p95


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sqlite-dir", type=Path, required=True)
    parser.add_argument("--traces", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--reload", action="store_true")
    args = parser.parse_args()
    if not (args.sqlite_dir / "traceyard.db").exists():
        print(f"SQLite loaded in {load(args.sqlite_dir, args.traces):.0f} s")
    with scratch_schema(PG_SCHEMA, keep=True) as url:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            if args.reload:
                conn.execute(f"DROP SCHEMA {PG_SCHEMA} CASCADE")
                conn.execute(f"CREATE SCHEMA {PG_SCHEMA}")
            loaded = conn.execute(
                "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = 'prompts'",
                (PG_SCHEMA,),
            ).fetchone()
        pg = PostgresStore(url)
        if not loaded or not pg.list_prompts(None):
            print(f"PostgreSQL loaded in {fill(pg, args.traces):.0f} s")
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("ANALYZE")
        sqlite = SQLiteStore.in_dir(args.sqlite_dir)
        print(f"load average {load_average()}; {args.runs} runs each (ms)")
        print(f"{'case':36} {'SQLite p50':>10} {'p95':>7} {'PG p50':>8} {'p95':>7}")
        for label, case in CASES:
            s50, s95 = timed(lambda: run(sqlite, case), args.runs)  # noqa: B023 (called now)
            p50, p95 = timed(lambda: run(pg, case), args.runs)  # noqa: B023
            print(f"{label:36} {s50:10.1f} {s95:7.1f} {p50:8.1f} {p95:7.1f}")
        print(f"load average at the end {load_average()}")
        sqlite.close()
        pg.close()


if __name__ == "__main__":
    main()

"""PostgreSQL write throughput: observations/s through PostgresStore.write at steady state, in
the same run as the raw limit (plain COPY of the same final rows) and our ratio to it; the
upsert strategies we compared; and the aggregate with 1, 2 and 4 writer processes.

    uv run python bench/postgres_write.py --seconds 20

Workload: bench/postgres_common.py (the writer-ceiling shape, ends lagging their starts).
Event generation happens outside the timed calls; RowBuilder (serialising, compressing,
pricing) is inside them, since the writer thread pays it.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from postgres_common import Workload, load_average, scratch_schema

from traceyard.cost.pricing import PriceTable
from traceyard.model import Entity, Event
from traceyard.store._rows import OBSERVATION_COLUMNS, RowBuilder
from traceyard.store.postgres import (
    _JSONB,
    _MERGE_SQL,
    PostgresStore,
    _copy,
    _select_expr,
    _stage_type,
    upsert_tail,
)


def store_throughput(url: str, seconds: float, prefix: str = "a") -> tuple[float, list[Event]]:
    """(observations/s, every event written) for PostgresStore.write over ``seconds``."""
    store = PostgresStore(url)
    workload = Workload(prefix=prefix)
    written: list[Event] = []
    busy = 0.0
    completed = 0
    try:
        for n, batch in enumerate(workload.batches(10**9)):
            started = time.perf_counter()
            store.write(batch)
            elapsed = time.perf_counter() - started
            if n < 3:  # warm-up: connections, staging tables, prepared statements
                continue
            written.extend(batch)
            busy += elapsed
            # an observation is complete when its end is written
            completed += sum(1 for e in batch if "end_time" in e.fields)
            if busy >= seconds:
                break
    finally:
        store.close()
    return completed / busy, written


def raw_copy_throughput(url: str, events: Sequence[Event]) -> float:
    """Plain COPY of the same observations (final rows, payloads compressed as we store them)
    into the same tables, no conflict handling, no derived columns: the floor of the work."""
    PostgresStore(url).close()  # same schema
    rows = RowBuilder(8192, PriceTable.default()).build(events)
    observations = len(rows.observations)
    payloads: dict[str, list[tuple[str, str, bytes]]] = {}
    for payload in rows.payloads:
        payloads.setdefault(payload[0], []).append(payload)
    chunk = 1000
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        for i in range(0, observations, chunk):
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy(
                    f"COPY observations ({', '.join(OBSERVATION_COLUMNS)}) FROM STDIN"
                ) as copy:
                    for row in rows.observations[i : i + chunk]:
                        copy.write_row(row)
                with cur.copy("COPY payloads (owner, field, data) FROM STDIN") as copy:
                    for row in rows.observations[i : i + chunk]:
                        for payload in payloads.get(row[0], ()):
                            copy.write_row(payload)
        elapsed = time.perf_counter() - started
    return observations / elapsed


def strategies(url: str, rounds: int = 8, size: int = 1000) -> dict[str, float]:
    """Observation rows/s merged into the table by each upsert strategy (same rows, same SET)."""
    PostgresStore(url).close()
    builder = RowBuilder(8192, PriceTable.default())
    cols = OBSERVATION_COLUMNS
    typed = ", ".join(f"%s::{'jsonb' if c in _JSONB else _stage_type(c)}" for c in cols)
    values_sql = f"INSERT INTO observations ({', '.join(cols)}) VALUES ({typed}) "
    unnest_sql = (
        f"INSERT INTO observations ({', '.join(cols)}) "
        f"SELECT {', '.join(_select_expr(c) for c in cols)} FROM unnest("
        + ", ".join(f"%s::{_stage_type(c)}[]" for c in cols)
        + f") AS u({', '.join(cols)}) ORDER BY id "
    )
    tail = upsert_tail("observations")

    def copy_stage(conn: Any, rows: list[tuple[Any, ...]]) -> None:
        with conn.cursor() as cur:
            _copy(cur, "observations", rows)
            cur.execute(_MERGE_SQL["observations"])

    def executemany(conn: Any, rows: list[tuple[Any, ...]]) -> None:
        with conn.cursor() as cur:  # psycopg 3 pipelines executemany
            cur.executemany(values_sql + tail, rows)

    def multi_values(conn: Any, rows: list[tuple[Any, ...]]) -> None:
        per = 60_000 // len(cols)
        one = values_sql.split("VALUES ")[1]
        for i in range(0, len(rows), per):
            part = rows[i : i + per]
            sql = values_sql.split("VALUES ")[0] + "VALUES " + ", ".join([one] * len(part))
            conn.execute(sql + tail, [v for r in part for v in r])

    def unnest(conn: Any, rows: list[tuple[Any, ...]]) -> None:
        conn.execute(unnest_sql + tail, [list(c) for c in zip(*rows, strict=True)])

    methods: dict[str, Callable[[Any, list[tuple[Any, ...]]], None]] = {
        "COPY to temp table + INSERT..SELECT ON CONFLICT (ours)": copy_stage,
        "executemany, pipelined": executemany,
        "multi-row VALUES": multi_values,
        "unnest(arrays)": unnest,
    }
    results: dict[str, list[float]] = {name: [] for name in methods}
    workload = Workload(prefix="s")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS _ty_stage_observations ("
            + ", ".join(f"{c} {_stage_type(c)}" for c in cols)
            + ") ON COMMIT DELETE ROWS"
        )
        for _ in range(rounds):
            for name, method in methods.items():
                events: list[Event] = []
                while len(events) < size:
                    starts, ends = workload.trace()
                    events += [e for e in starts + ends if e.entity is Entity.OBSERVATION]
                rows = builder.build(events).observations
                started = time.perf_counter()
                with conn.transaction():
                    method(conn, rows)
                results[name].append(len(rows) / (time.perf_counter() - started))
    return {name: sorted(r)[len(r) // 2] for name, r in results.items()}


def _process_writer(url: str, prefix: str, seconds: float, ready: Any, results: Any) -> None:
    """One writer process: imports and connects first, then writes for ``seconds`` once every
    process is ready (so slow starts on a busy machine do not eat into the window)."""
    store = PostgresStore(url)
    workload = Workload(prefix=prefix)
    batches = workload.batches(10**9)
    first = next(batches)
    store.write(first)  # warm: staging tables, prepared statements
    ready.wait()
    completed = 0
    deadline = time.monotonic() + seconds
    try:
        for batch in batches:
            store.write(batch)
            completed += sum(1 for e in batch if "end_time" in e.fields)
            if time.monotonic() >= deadline:
                break
    finally:
        store.close()
    results.put(completed)


def aggregate(url: str, processes: int, seconds: float) -> float:
    PostgresStore(url).close()
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Barrier(processes)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=_process_writer, args=(url, f"p{i}", seconds, ready, results))
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    counts = [results.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    return sum(counts) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    print(f"load average before: {load_average()}")

    with scratch_schema() as url:
        ours, events = store_throughput(url, args.seconds)
    with scratch_schema() as url:
        raw = raw_copy_throughput(url, events)
    print(
        f"one process, PostgresStore.write: {ours:,.0f} observations/s "
        f"({len(events):,} events written at steady state)"
    )
    print(f"raw limit, plain COPY of the same final rows: {raw:,.0f} observations/s")
    print(f"ratio ours/raw: {ours / raw:.2f}   (target: >= 30,000 observations/s)")

    with scratch_schema() as url:
        print("\nupsert strategies, observation rows/s (median of 8 rounds of 1,000 rows):")
        for name, rate in strategies(url).items():
            print(f"  {name:55s} {rate:10,.0f}")

    print("\naggregate throughput, writer processes on one database:")
    for n in (1, 2, 4):
        with scratch_schema() as url:
            rate = aggregate(url, n, args.seconds)
        print(f"  {n} process{'es' if n > 1 else '  '}: {rate:10,.0f} observations/s")
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()

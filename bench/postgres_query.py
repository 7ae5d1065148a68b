"""Read latencies at 1,000,000 observations, PostgreSQL beside SQLite, through the stores' own
query methods (list, detail, sessions, users, timeseries), plus the PostgreSQL plans.

    uv run python bench/postgres_query.py            # loads once, then reuses the data
    uv run python bench/postgres_query.py --reload   # rebuild both databases

Data: 200,000 traces x 5 observations over the last 7 days (3 projects, 1,000 users, 20,000
sessions, 5 models, 5% errors) plus one trace of 1,000 observations. Loading takes the fastest
path: our RowBuilder makes the rows (so they are exactly what the stores write), the derived
trace columns are computed in Python, and the rows go in with COPY (PostgreSQL) or
executemany (SQLite) into empty databases at schema version 2; opening the stores then
migrates them (the per-level counts and the hourly rollup are backfilled by migrations 4 and
5, timed and printed).

``--pg-schema`` and ``--sqlite-path`` keep a data set of your own when others bench too (a
newer schema in a shared one locks older builds out).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
from postgres_common import load_average, scratch_schema

from traceyard.cost.pricing import PriceTable
from traceyard.model import Entity, Event, Level, TraceStatus
from traceyard.store._hours import HOUR_NS
from traceyard.store._rows import OBSERVATION_COLUMNS, TRACE_COLUMNS, RowBuilder
from traceyard.store.base import Store, TimeseriesGroup, TimeseriesQuery, TraceQuery, TraceSort
from traceyard.store.postgres import PostgresStore, _trace_filters
from traceyard.store.sqlite import SQLiteStore

TRACES = 200_000
OBS_PER_TRACE = 5
BIG_TRACE = "f" * 32
SQLITE_PATH = Path("/tmp/traceyard-bench/query-1m/traceyard.db")
PG_SCHEMA = "bench_query_1m"
#: The schema version the COPY load writes (its derived trace columns are the DERIVED list).
LOAD_VERSION = 2
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "gemini-1.5-pro", "in-house-7b"]
NAMES = ["chat", "rag", "agent", "summarize", "classify"]
DERIVED = (
    "start_ns",
    "end_ns",
    "latency_ms",
    "status",
    "observation_count",
    "open_count",
    "error_count",
    "usage",
    "total_tokens",
    "total_cost",
)
NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)
T0 = int((NOW - timedelta(days=7)).timestamp()) * 1_000_000_000
STEP = 7 * 86_400 * 1_000_000_000 // TRACES


def _events(i: int) -> list[Event]:
    tid = f"{i:032x}"
    project = f"proj{i % 3}"
    start = T0 + i * STEP
    latency = (100 + (i * 7919) % 2000) * 1_000_000
    events = [
        Event(
            Entity.TRACE,
            tid,
            tid,
            project,
            {
                "name": NAMES[i % 5],
                "user_id": f"user{i % 1000}",
                "session_id": f"sess{i // 10}",
                "tags": [["prod"], ["prod", "beta"], ["dev"]][i % 3],
                "metadata": {"region": ["eu", "us", "ap"][i % 3], "tier": i % 5},
                "input": {"q": f"question {i} about topic {i % 97}"},
                "output": {"a": f"answer {i}"},
            },
        )
    ]
    kinds = ["chain", "generation", "tool", "retriever", "span"]
    for k in range(OBS_PER_TRACE):
        fields: dict[str, Any] = {
            "type": kinds[k],
            "name": f"{kinds[k]}-{k}",
            "parent_id": None if k == 0 else f"{tid}0000",
            "start_time": start + k * latency // 10,
            "end_time": start + (latency if k == 0 else (k + 1) * latency // 10),
            "input": {"step": k},
            "output": {"ok": True},
        }
        if k == 1:
            fields["model"] = MODELS[i % 5]
            fields["usage"] = {"input": 100 + i % 50, "output": 20 + i % 30}
        if k == 2 and i % 20 == 0:
            fields["level"] = "ERROR"
            fields["status_message"] = "tool failed"
        events.append(Event(Entity.OBSERVATION, f"{tid}{k:04x}", tid, project, fields))
    return events


def _big_trace_events() -> list[Event]:
    start = T0 + 3 * 86_400 * 1_000_000_000
    events = [Event(Entity.TRACE, BIG_TRACE, BIG_TRACE, "proj0", {"name": "big"})]
    for k in range(1000):
        events.append(
            Event(
                Entity.OBSERVATION,
                f"{BIG_TRACE}{k:04x}",
                BIG_TRACE,
                "proj0",
                {
                    "type": "span",
                    "name": f"step-{k}",
                    "parent_id": None if k == 0 else f"{BIG_TRACE}0000",
                    "start_time": start + k * 1_000_000,
                    "end_time": start + (k + 1) * 1_000_000,
                    "input": {"k": k},
                    "output": {"k": k},
                },
            )
        )
    return events


def _rows(events: list[Event], builder: RowBuilder) -> tuple[list[tuple[Any, ...]], list[Any]]:
    """(trace rows with derived columns, observation rows) as the stores would hold them."""
    batch = builder.build(events)
    by_trace: dict[str, list[tuple[Any, ...]]] = {}
    col = {c: n for n, c in enumerate(OBSERVATION_COLUMNS)}
    for row in batch.observations:
        by_trace.setdefault(row[col["trace_id"]], []).append(row)
    traces = []
    for trow in batch.traces:
        obs = by_trace.get(trow[0], [])
        start = min(o[col["start_time"]] for o in obs)
        end = max(o[col["end_time"]] for o in obs)
        errors = sum(1 for o in obs if o[col["level"]] == Level.ERROR.value)
        usage: dict[str, float] = {}
        for o in obs:
            for key, value in json.loads(o[col["usage"]] or "{}").items():
                usage[key] = usage.get(key, 0.0) + value
        derived = (
            start,
            end,
            (end - start) / 1e6,
            (TraceStatus.ERROR if errors else TraceStatus.OK).value,
            len(obs),
            0,
            errors,
            json.dumps(usage) if usage else None,
            sum(o[col["total_tokens"]] or 0 for o in obs),
            sum(o[col["total_cost"]] or 0 for o in obs),
        )
        traces.append((*trow, *derived))
    return traces, batch.observations


def _chunks() -> Any:
    builder = RowBuilder(8192, PriceTable.default())
    chunk = 5000
    for lo in range(0, TRACES, chunk):
        events = [e for i in range(lo, min(lo + chunk, TRACES)) for e in _events(i)]
        yield _rows(events, builder)
    yield _rows(_big_trace_events(), builder)


def load(reload: bool) -> str:
    """Both databases with the data set (reused when already there); returns the PG URL."""
    expected = TRACES * OBS_PER_TRACE + 1000
    with scratch_schema(PG_SCHEMA, keep=True) as url:
        pass
    pg = PostgresStore(url)
    sq = SQLiteStore(SQLITE_PATH)
    ready = pg.counts().observations == expected and sq.counts().observations == expected
    pg.close()
    sq.close()
    if ready and not reload:
        print(f"reusing the loaded data ({expected:,} observations in each store)")
        return url
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {PG_SCHEMA}")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{SQLITE_PATH}{suffix}").unlink(missing_ok=True)
    _create_at_load_version(url)
    trace_cols = (*TRACE_COLUMNS, *DERIVED)
    started = time.perf_counter()
    with psycopg.connect(url) as pgc:
        import sqlite3

        sqc = sqlite3.connect(SQLITE_PATH)
        sqc.execute("PRAGMA synchronous=OFF")  # a bulk load into a scratch file
        n_traces = n_obs = 0
        for traces, observations in _chunks():
            with pgc.cursor() as cur:
                with cur.copy(f"COPY traces ({', '.join(trace_cols)}) FROM STDIN") as copy:
                    for row in traces:
                        copy.write_row(row)
                cols = ", ".join(OBSERVATION_COLUMNS)
                with cur.copy(f"COPY observations ({cols}) FROM STDIN") as copy:
                    for row in observations:
                        copy.write_row(row)
            pgc.commit()
            sqc.executemany(
                f"INSERT INTO traces ({', '.join(trace_cols)}) "
                f"VALUES ({', '.join('?' * len(trace_cols))})",
                traces,
            )
            sqc.executemany(
                f"INSERT INTO observations ({', '.join(OBSERVATION_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(OBSERVATION_COLUMNS))})",
                observations,
            )
            sqc.commit()
            n_traces += len(traces)
            n_obs += len(observations)
            if n_traces % 50_000 < 5000:
                print(f"  loaded {n_traces:,} traces, {n_obs:,} observations")
        # counters: one row holding the totals (the stores' own writes keep them after this)
        pgc.execute("DELETE FROM counters")
        pgc.execute(
            "INSERT INTO counters VALUES (0, %s, %s, 0)", (n_traces, n_obs)
        )  # COPY bypassed the write path that maintains them
        pgc.commit()
        pgc.execute("ANALYZE")
        pgc.commit()
        sqc.execute("ANALYZE")
        sqc.commit()
        sqc.close()
    print(f"loaded both stores in {time.perf_counter() - started:.0f} s")
    for label, open_store in (("PostgreSQL", lambda: PostgresStore(url)),
                              ("SQLite", lambda: SQLiteStore(SQLITE_PATH))):  # fmt: skip
        started = time.perf_counter()
        open_store().close()
        print(f"{label}: migrations {LOAD_VERSION + 1}+ on the loaded data took "
              f"{time.perf_counter() - started:.1f} s")  # fmt: skip
    return url


def _create_at_load_version(url: str) -> None:
    """Both databases with the first LOAD_VERSION migrations only."""
    import sqlite3

    from traceyard.store import postgres_schema, sqlite_schema
    from traceyard.store.sqlite import split_statements

    with psycopg.connect(url, autocommit=True) as conn:
        for migration in postgres_schema.MIGRATIONS[:LOAD_VERSION]:
            conn.execute(migration)
        conn.execute("CREATE TABLE traceyard_schema (version integer NOT NULL)")
        conn.execute("INSERT INTO traceyard_schema VALUES (%s)", (LOAD_VERSION,))
    SQLITE_PATH.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(SQLITE_PATH) as conn:
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("PRAGMA journal_mode=WAL")
        for migration in sqlite_schema.MIGRATIONS[:LOAD_VERSION]:
            for statement in split_statements(migration):
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {LOAD_VERSION}")


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, float]:
    fn()  # warm
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.95))]


def cases() -> list[tuple[str, Callable[[Store], Any]]]:
    day = NOW - timedelta(days=3)
    week = TimeseriesQuery(start=NOW - timedelta(days=7), end=NOW, interval_s=3600)
    filters: list[tuple[str, dict[str, Any]]] = [
        ("default (newest first)", {}),
        ("project", {"project": "proj1"}),
        ("name contains", {"name": "summ"}),
        ("user_id", {"user_id": "user42"}),
        ("session_id", {"session_id": "sess4242"}),
        ("tags all of", {"tags": ["prod", "beta"]}),
        ("status error", {"status": TraceStatus.ERROR}),
        ("level ERROR", {"level": Level.ERROR}),
        ("level WARNING (none)", {"level": Level.WARNING}),
        ("time range (1 day)", {"start_after": day, "start_before": day + timedelta(days=1)}),
        ("latency >= 2 s", {"min_latency_ms": 2000}),
        ("min cost", {"min_cost": 0.001}),
        ("model", {"model": "claude-3-5-sonnet"}),
        ("metadata region=eu", {"metadata": {"region": "eu"}}),
        ("free text", {"text": "topic 42"}),
        ("sort by latency", {"sort": TraceSort.LATENCY}),
        ("sort by cost", {"sort": TraceSort.COST}),
        ("sort by tokens", {"sort": TraceSort.TOKENS}),
    ]
    out: list[tuple[str, Callable[[Store], Any]]] = [
        (f"list: {label}", _lister(TraceQuery(**f))) for label, f in filters
    ]
    out += [
        ("list: page 5 (cursor)", _fifth_page),
        ("detail: 1,000-observation trace", lambda s: s.get_trace(BIG_TRACE)),
        ("detail: 5-observation trace", lambda s: s.get_trace(f"{12345:032x}")),
        ("sessions: first page", lambda s: s.list_sessions()),
        ("session detail", lambda s: s.get_session("sess4242")),
        ("users: first page", lambda s: s.list_users()),
        ("timeseries 7 d hourly", lambda s: s.timeseries(week)),
        (
            "timeseries 7 d by model",
            lambda s: s.timeseries(week.model_copy(update={"group_by": TimeseriesGroup.MODEL})),
        ),
        (
            "timeseries 7 d by name",
            lambda s: s.timeseries(week.model_copy(update={"group_by": TimeseriesGroup.NAME})),
        ),
        ("counts()", lambda s: s.counts()),
    ]
    return out


def _lister(query: TraceQuery) -> Callable[[Store], Any]:
    return lambda store: store.list_traces(query)


def _fifth_page(store: Store) -> Any:
    query = TraceQuery()
    for _ in range(5):
        page = store.list_traces(query)
        query = query.model_copy(update={"cursor": page.next_cursor})
    return page


def explain(url: str) -> None:
    """EXPLAIN ANALYZE of the main PostgreSQL queries, as the store issues them."""
    plans: list[tuple[str, str, list[Any]]] = []
    for label, query in [
        ("list, default", TraceQuery()),
        ("list, user_id filter", TraceQuery(user_id="user42")),
        ("list, tags filter", TraceQuery(tags=["prod", "beta"])),
        ("list, model filter", TraceQuery(model="claude-3-5-sonnet")),
    ]:
        where, params = _trace_filters(query)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        plans.append(
            (
                label,
                f"SELECT * FROM traces t {clause} ORDER BY t.start_ns DESC, t.id DESC LIMIT 51",
                params,
            )
        )
    plans += [
        (
            "detail, observations of a trace",
            "SELECT * FROM observations WHERE trace_id = %s ORDER BY start_time NULLS FIRST, id",
            [BIG_TRACE],
        ),
        (
            "sessions page, step 1: walk the newest traces (store/_groups.py)",
            "SELECT session_id, start_ns, id FROM traces WHERE session_id IS NOT NULL "
            "ORDER BY start_ns DESC, id DESC LIMIT 500",
            [],
        ),
        (
            "sessions page, step 2: aggregate the sessions met",
            "SELECT session_id, COUNT(*), MAX(start_ns) AS last_start, SUM(total_cost) "
            "FROM traces WHERE session_id IS NOT NULL AND session_id = ANY(%s) "
            "GROUP BY session_id",
            [[f"sess{i}" for i in range(19_949, 20_000)]],
        ),
        (
            "timeseries, 7 days hourly, step 1: sums per hour from the rollup",
            "SELECT hour, SUM(traces), SUM(observations), SUM(tokens) FROM trace_hours "
            "WHERE hour >= %s AND hour < %s GROUP BY hour",
            [T0 // HOUR_NS, T0 // HOUR_NS + 168],
        ),
        (
            "timeseries, step 2: finished traces per hour and latency bin",
            "SELECT hour, latency_bin, SUM(traces) FROM trace_hours "
            "WHERE hour >= %s AND hour < %s AND latency_bin >= 0 GROUP BY hour, latency_bin",
            [T0 // HOUR_NS, T0 // HOUR_NS + 168],
        ),
        (
            "timeseries, step 3: one percentile = the n-th latency of one bin in one hour",
            "SELECT t.latency_ms FROM traces t WHERE t.latency_bin >= 0 AND t.latency_bin = %s "
            "AND t.start_ns >= %s AND t.start_ns < %s ORDER BY t.latency_ms OFFSET 3 LIMIT 1",
            [615, T0, T0 + HOUR_NS],  # 615: 150-159 ms (6 digits of µs, leading 15)
        ),
    ]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET work_mem = '64MB'")  # as PostgresStore.timeseries sets it
        for label, sql, params in plans:
            rows = conn.execute(f"EXPLAIN (ANALYZE, COSTS OFF) {sql}", params).fetchall()
            print(f"\n-- {label}")
            for (line,) in rows:
                print(f"   {line}")


def main() -> None:
    global PG_SCHEMA, SQLITE_PATH
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reload", action="store_true")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--no-explain", action="store_true")
    parser.add_argument("--pg-schema", default=PG_SCHEMA)
    parser.add_argument("--sqlite-path", type=Path, default=SQLITE_PATH)
    args = parser.parse_args()
    PG_SCHEMA, SQLITE_PATH = args.pg_schema, args.sqlite_path
    print(f"load average before: {load_average()}")
    url = load(args.reload)
    pg = PostgresStore(url)
    sq = SQLiteStore(SQLITE_PATH)
    print(f"\n{'query':40s} {'SQLite p50':>11s} {'p95':>8s} {'Postgres p50':>13s} {'p95':>8s}")
    try:
        for label, fn in cases():
            s50, s95 = timed(lambda fn=fn: fn(sq), args.runs)
            p50, p95 = timed(lambda fn=fn: fn(pg), args.runs)
            print(f"{label:40s} {s50:9.1f}ms {s95:6.1f}ms {p50:11.1f}ms {p95:6.1f}ms")
    finally:
        pg.close()
        sq.close()
    if not args.no_explain:
        explain(url)
    print(f"\nload average after: {load_average()}")


if __name__ == "__main__":
    main()

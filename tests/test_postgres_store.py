"""What only the PostgreSQL store does: versioned migrations under an advisory lock, a clear
error without the extra, outages surfacing as retryable errors, NUL characters, and several
real processes writing to one database. (The shared contract runs in test_store_contract.py.)

Uses the real server on 127.0.0.1:5432; fails (never skips) when it is not there.
"""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from store_contract import at, obs, pg_connect, pg_schema, schema_url, score, trace, trace_in_child

from traceyard.errors import MissingExtraError, StoreError, StoreUnavailableError
from traceyard.model import Level
from traceyard.store.base import TraceQuery
from traceyard.store.postgres import PostgresStore
from traceyard.store.postgres_schema import MIGRATIONS, SCHEMA_VERSION

pytestmark = pytest.mark.postgres


@pytest.fixture
def fresh_url() -> Iterator[str]:
    with pg_schema(fresh=True) as url:
        yield url


def _schema_of(url: str) -> str:
    return url.rsplit("%3D", 1)[1]


def _tables(url: str) -> set[str]:
    with pg_connect() as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (_schema_of(url),)
        ).fetchall()
    return {r[0] for r in rows}


def _version(url: str) -> int:
    with pg_connect(url) as conn:
        return int(conn.execute("SELECT version FROM traceyard_schema").fetchone()[0])


def test_migrates_an_empty_schema(fresh_url: str) -> None:
    store = PostgresStore(fresh_url)
    try:
        assert _version(fresh_url) == SCHEMA_VERSION == len(MIGRATIONS)
        assert _tables(fresh_url) == {
            "traceyard_schema",
            "traces",
            "observations",
            "scores",
            "payloads",
            "counters",
            "prompts",
            "media",
            "trace_hours",
        }
        store.write([obs("o", "t", start_time=at(0))])
        assert store.counts().observations == 1
    finally:
        store.close()


def test_migrates_up_from_the_previous_schema_version(fresh_url: str) -> None:
    # A database as the previous version left it, with data in it.
    with pg_connect(fresh_url) as conn:
        conn.execute(MIGRATIONS[0])
        conn.execute("CREATE TABLE traceyard_schema (version integer NOT NULL)")
        conn.execute("INSERT INTO traceyard_schema VALUES (1)")
        conn.execute("INSERT INTO traces (id, project, name) VALUES ('old', 'p', 'kept')")
        conn.execute(
            "INSERT INTO observations (id, trace_id, name, start_time) "
            "VALUES ('o1', 'old', 'a', %s), ('o2', 'old', 'b', %s)",
            (at(0), at(1)),
        )
        conn.execute(
            "INSERT INTO scores (id, trace_id, project, name, data_type, source) "
            "VALUES ('s', 'old', 'p', 'q', 'numeric', 'api')"
        )
    store = PostgresStore(fresh_url)
    try:
        assert _version(fresh_url) == SCHEMA_VERSION
        counts = store.counts()
        assert (counts.traces, counts.observations, counts.scores) == (1, 2, 1)
        store.write([obs("o3", "old", start_time=at(2), end_time=at(3))])
        detail = store.get_trace("old")
        assert detail is not None and detail.name == "kept"
        assert [o.id for o in detail.observations] == ["o1", "o2", "o3"]
        assert store.counts().observations == 3
        assert store.save_prompt("p", "n", "text").version == 1
    finally:
        store.close()
    with pg_connect(fresh_url) as conn:
        rows = conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
        ).fetchall()
        indexes = {r[0] for r in rows}
        assert "observations_prompt" in indexes  # migration 3


def test_migration_4_counts_the_levels_of_existing_traces(fresh_url: str) -> None:
    with pg_connect(fresh_url) as conn:
        for migration in MIGRATIONS[:3]:
            conn.execute(migration)
        conn.execute("CREATE TABLE traceyard_schema (version integer NOT NULL)")
        conn.execute("INSERT INTO traceyard_schema VALUES (3)")
        conn.execute("INSERT INTO traces (id, project) VALUES ('a', 'p'), ('b', 'p')")
        conn.execute(
            "INSERT INTO observations (id, trace_id, level) VALUES "
            "('a1', 'a', 'WARNING'), ('a2', 'a', NULL), ('b1', 'b', 'DEBUG')"
        )
    store = PostgresStore(fresh_url)
    try:
        assert _version(fresh_url) == SCHEMA_VERSION
        listed = {
            level: {t.id for t in store.list_traces(TraceQuery(level=level)).data}
            for level in Level
        }
        assert listed == {
            Level.DEBUG: {"b"},
            Level.DEFAULT: {"a"},
            Level.WARNING: {"a"},
            Level.ERROR: set(),
        }
    finally:
        store.close()


def test_instances_starting_together_migrate_once(fresh_url: str) -> None:
    stores: list[PostgresStore] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        try:
            barrier.wait()
            stores.append(PostgresStore(fresh_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert not errors
        assert len(stores) == 4
        with pg_connect(fresh_url) as conn:
            assert conn.execute("SELECT COUNT(*) FROM traceyard_schema").fetchone()[0] == 1
        assert _version(fresh_url) == SCHEMA_VERSION
    finally:
        for store in stores:
            store.close()


def test_a_schema_newer_than_this_release_is_refused(fresh_url: str) -> None:
    PostgresStore(fresh_url).close()
    with pg_connect(fresh_url) as conn:
        conn.execute("UPDATE traceyard_schema SET version = 99")
    with pytest.raises(StoreError, match="newer than this traceyard"):
        PostgresStore(fresh_url)


def test_without_psycopg_open_store_names_the_extra() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["psycopg"] = None  # as if the extra were not installed
        from traceyard.config import load_settings
        from traceyard.store.factory import open_store
        from traceyard.errors import MissingExtraError
        try:
            open_store(load_settings(database_url="postgresql://u@127.0.0.1/db"))
        except MissingExtraError as exc:
            print(exc)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == (
        "PostgreSQL storage needs an optional dependency: pip install 'traceyard[postgres]'"
    )
    assert issubclass(MissingExtraError, ImportError)


def test_an_unreachable_server_is_a_retryable_error() -> None:
    # Nothing listens on port 1: the store opens (apps must start even while the database is
    # down) and every use says "unavailable", which the writer retries.
    store = PostgresStore("postgresql://postgres@127.0.0.1:1/test")
    try:
        with pytest.raises(StoreUnavailableError, match=r"127\.0\.0\.1:1"):
            store.write([obs("o", "t", start_time=at(0))])
        with pytest.raises(StoreUnavailableError):
            store.get_trace("t")
    finally:
        store.close()


def test_open_store_selects_postgres_by_url() -> None:
    from traceyard.config import load_settings
    from traceyard.store.factory import open_store

    with pg_schema() as url:
        store = open_store(load_settings(database_url=url, blob_threshold_bytes=10))
        try:
            assert isinstance(store, PostgresStore)
            store.write([obs("o", "t", start_time=at(0), input="x" * 100)])
            detail = store.get_trace("t")
            assert detail is not None and detail.observations[0].input == "x" * 100
            assert "127.0.0.1:5432/test" in store.counts().location
            assert "password" not in store.counts().location
        finally:
            store.close()


def test_nul_characters_do_not_lose_the_batch() -> None:
    with pg_schema() as url:
        store = PostgresStore(url)
        try:
            store.write(
                [
                    trace("t", name="a\x00b", metadata={"k": "x\x00y", "e": "\\u0000"}),
                    obs("o", "t", name="n\x00", start_time=at(0), input="in\x00put"),
                    obs("fine", "t", name="fine", start_time=at(1)),
                    score("s", "t", name="q", comment="c\x00"),
                ]
            )
            detail = store.get_trace("t")
            assert detail is not None
            assert detail.name == "a\ufffdb"
            assert detail.metadata == {"k": "x\ufffdy", "e": "\\u0000"}
            assert {o.name for o in detail.observations} == {"n\ufffd", "fine"}
            assert detail.observations[0].input == "in\x00put"  # JSON text keeps it escaped
        finally:
            store.close()


def test_several_processes_write_every_observation_exactly_once() -> None:
    workers, traces, spans = 3, 40, 5
    with pg_schema() as url:
        PostgresStore(url).close()  # migrated once up front, like a deployment would
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(workers) as pool:
            results: list[dict[str, Any]] = pool.starmap(
                trace_in_child, [(url, w, traces, spans) for w in range(workers)]
            )
        assert all(r["lost"] == 0 and r["dropped"] == 0 for r in results)
        with pg_connect(url) as conn:
            n, distinct = conn.execute(
                "SELECT COUNT(*), COUNT(DISTINCT id) FROM observations"
            ).fetchone()
            names = {r[0] for r in conn.execute("SELECT name FROM traces").fetchall()}
        assert n == distinct == workers * traces * spans
        assert names == {f"w{w}-t{t}" for w in range(workers) for t in range(traces)}
        store = PostgresStore(url)
        try:
            counts = store.counts()
            assert (counts.traces, counts.observations) == (workers * traces, n)
            page = store.list_traces(TraceQuery(limit=1000))
            assert len(page.data) == workers * traces
            assert all(t.observation_count == spans and t.status.value == "ok" for t in page.data)
            # the hourly rollup, updated by every writer, adds up to what the traces say
            with pg_connect(url) as conn:
                rollup = conn.execute(
                    "SELECT SUM(traces), SUM(observations) FROM trace_hours"
                ).fetchone()
                by_hour = conn.execute(
                    "SELECT COUNT(*) FROM (SELECT start_ns / 3600000000000 AS h, latency_bin, "
                    "project, COUNT(*) AS n FROM traces GROUP BY 1, 2, 3) t "
                    "FULL JOIN (SELECT * FROM trace_hours WHERE traces <> 0) r "
                    "ON (r.hour, r.latency_bin, r.project) = (t.h, t.latency_bin, t.project) "
                    "WHERE r.traces IS DISTINCT FROM t.n"
                ).fetchone()
            assert tuple(rollup) == (workers * traces, n) and by_hour[0] == 0
        finally:
            store.close()


def test_schema_url_isolates_tests() -> None:
    assert "search_path" in schema_url("ty_x").replace("%3D", "=")

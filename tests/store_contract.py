"""Helpers for the store contract tests: backends to open, an isolated PostgreSQL schema per
test, and small builders for events. Imported by tests/test_store_*.py and test_postgres_*.py.

PostgreSQL tests use the real server on 127.0.0.1:5432 (user postgres, database test). If it
cannot be reached they FAIL with a message saying so; they never skip.
"""

from __future__ import annotations

import atexit
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from traceyard.model import Entity, Event
from traceyard.store.base import Store

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "memory", "postgres")

#: 2026-01-01T00:00:00Z in nanoseconds; tests place events at T0 + seconds.
T0 = 1_767_225_600 * 1_000_000_000
SECOND = 1_000_000_000
#: payloads above this many bytes of JSON go to the compressed payloads table
BLOB_THRESHOLD = 200

OpenStore = Callable[..., Store]


def pg_connect(url: str = PG_ADMIN_URL) -> Any:
    """A psycopg connection, or a test failure that says the server is not there."""
    import psycopg

    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {url} ({exc}). These tests need the local server: "
            "start it with `pg_ctlcluster 15 main start` (.ci/run does this).",
            pytrace=False,
        )


def schema_url(schema: str) -> str:
    """The test database with ``schema`` first on the search path: an isolated store."""
    return f"{PG_ADMIN_URL}?options={quote(f'-csearch_path={schema}')}"


#: Schemas already migrated by an earlier test, emptied and handed to the next one: a fresh
#: schema costs ~0.3 s of DDL per test, emptying one a few milliseconds.
_spare_schemas: list[str] = []


@contextmanager
def pg_schema(fresh: bool = False) -> Iterator[str]:
    """A schema of its own for one test (yields the URL that uses it).

    By default a schema left by an earlier test is emptied and reused (every table but the
    schema version); ``fresh=True`` gives a brand-new empty schema (migration tests).
    """
    if _spare_schemas and not fresh:
        schema = _spare_schemas.pop()
        with pg_connect() as conn, conn.transaction():
            tables = conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s "
                "AND tablename <> 'traceyard_schema'",
                (schema,),
            ).fetchall()
            for (table,) in tables:
                conn.execute(f"DELETE FROM {schema}.{table}")
    else:
        schema = f"ty_{uuid.uuid4().hex[:12]}"
        with pg_connect() as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema_url(schema)
    finally:
        if fresh:
            drop_schema(schema)
        else:
            _spare_schemas.append(schema)


def drop_schema(schema: str) -> None:
    with pg_connect() as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@atexit.register
def _drop_spare_schemas() -> None:
    while _spare_schemas:
        try:
            drop_schema(_spare_schemas.pop())
        except BaseException:  # the server may be gone by now; nothing to clean then
            return


@contextmanager
def store_opener(backend: str, tmp_path: Path) -> Iterator[OpenStore]:
    """``open_store(**kwargs)`` for one backend; every store it opened is closed at the end.
    Stores opened by one opener share their data (same file, same schema)."""
    opened: list[Store] = []
    with _location(backend, tmp_path) as where:

        def open_store(**kwargs: Any) -> Store:
            kwargs.setdefault("blob_threshold_bytes", BLOB_THRESHOLD)
            store: Store
            if backend == "sqlite":
                from traceyard.store.sqlite import SQLiteStore

                store = SQLiteStore(Path(where) / "traceyard.db", **kwargs)
            elif backend == "memory":
                from traceyard.store.memory import MemoryStore

                kwargs.pop("blob_threshold_bytes")
                store = MemoryStore(**kwargs)
            else:
                from traceyard.store.postgres import PostgresStore

                store = PostgresStore(where, **kwargs)
            opened.append(store)
            return store

        try:
            yield open_store
        finally:
            for store in opened:
                store.close()


@contextmanager
def _location(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "postgres":
        with pg_schema() as url:
            yield url
    else:
        yield str(tmp_path)


def stored_payload_count(store: Store) -> int | None:
    """Rows in the SQL backends' payloads table (None for the memory store, which has none)."""
    if store.backend == "sqlite":
        with sqlite3.connect(getattr(store, "path")) as conn:  # noqa: B009
            return int(conn.execute("SELECT COUNT(*) FROM payloads").fetchone()[0])
    if store.backend == "postgres":
        with pg_connect(getattr(store, "url")) as conn:  # noqa: B009
            return int(conn.execute("SELECT COUNT(*) FROM payloads").fetchone()[0])
    return None


# ------------------------------------------------------------------------ event builders


def trace(trace_id: str, project: str = "default", **fields: Any) -> Event:
    return Event(Entity.TRACE, trace_id, trace_id, project, fields)


def obs(obs_id: str, trace_id: str, project: str = "default", **fields: Any) -> Event:
    return Event(Entity.OBSERVATION, obs_id, trace_id, project, fields)


def score(score_id: str, trace_id: str, project: str = "default", **fields: Any) -> Event:
    return Event(Entity.SCORE, score_id, trace_id, project, fields)


def at(seconds: float) -> int:
    """T0 + seconds, in nanoseconds."""
    return T0 + int(seconds * SECOND)


# ------------------------------------------------------------------ work for child processes


def trace_in_child(database_url: str, worker: int, traces: int, spans: int) -> dict[str, int]:
    """Run in a spawned process: a tracer of its own writes ``traces`` traces of ``spans``
    spans each to ``database_url``; returns its stats after stop()."""
    from traceyard.capture.tracer import Tracer

    tracer = Tracer.create(database_url=database_url, start_server=False, worker_batch_timeout=0.05)
    for t in range(traces):
        with tracer.span(f"w{worker}-t{t}", input={"worker": worker, "trace": t}):
            for s in range(spans - 1):
                with tracer.span(f"w{worker}-t{t}-s{s}") as span:
                    span.update(output=s)
    lost = tracer.stop(60)
    stats = tracer.stats()
    return {
        "lost": lost,
        "processed": stats.events_processed,
        "dropped": stats.events_dropped,
    }

"""The SQLite store: the embedded default, one file in a portable data directory.

One writer (the pipeline's thread) and any number of readers, each on its own connection:
WAL lets readers run while a batch commits. Several processes may write to the same file;
``BEGIN IMMEDIATE`` plus a busy timeout serialises them, and a batch that still cannot get the
lock raises :class:`StoreUnavailableError` to the writer, which keeps it and retries (it never
reaches the app).

We use the ``sqlite3`` driver directly rather than SQLAlchemy Core: the writer's ceiling
(bench/writer_ceiling.py) is measured against plain ``executemany`` and every layer between
costs GIL time that the traced app would pay for.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from traceyard._internal.serialize import dumps
from traceyard.cost.pricing import PriceTable
from traceyard.errors import StoreClosedError, StoreError, StoreUnavailableError
from traceyard.model import (
    Event,
    Observation,
    Score,
    SessionDetail,
    SessionSummary,
    Trace,
    TraceDetail,
    UserSummary,
    datetime_to_ns,
    ns_to_datetime,
)
from traceyard.store import _convert as convert
from traceyard.store import _hours
from traceyard.store._groups import recent_groups
from traceyard.store._hours import HOUR_NS
from traceyard.store._prompts import DEFAULT_LABEL, plan_new_version, plan_set_labels
from traceyard.store._rows import (
    OBSERVATION_COLUMNS,
    SCORE_COLUMNS,
    TRACE_COLUMNS,
    RowBatch,
    RowBuilder,
    cost_total,
    decompress_text,
)
from traceyard.store._sql import (
    level_filter,
    like_escape,
    prompt_match,
    prompt_usage_sql,
    prompt_where,
    usage_keys,
)
from traceyard.store.base import (
    MediaRecord,
    Page,
    Prompt,
    PromptUsage,
    StoreCounts,
    TimeseriesGroup,
    TimeseriesPoint,
    TimeseriesQuery,
    TraceQuery,
    decode_cursor,
    encode_cursor,
)
from traceyard.store.sqlite_checkpoint import Checkpointer
from traceyard.store.sqlite_schema import LATENCY_BIN, MIGRATIONS, SCHEMA_VERSION

DB_FILENAME = "traceyard.db"

# CPython 3.11's sqlite3 binds only exact int/float/str/bytearray without adaptation. Every
# None (most columns of a row) and every bytes value takes the adapter path, which for a type
# with no registered adapter formats and discards an AttributeError message per value: a
# third of the writer's instructions per row (callgrind, bench/README.md). Registering
# identity adapters for both makes that a dict hit and a C call; the values bound are the
# same, so other sqlite3 users in the process see no change but the speed.
sqlite3.register_adapter(type(None), cast("Callable[[None], None]", {}.get))  # a C call: None
sqlite3.register_adapter(bytes, bytes)  # bytes(b) is b for an exact bytes object

# Each pragma, and why:
_PRAGMAS = (
    # Deleted rows give their pages back to the file system after prune/delete (see
    # _reclaim). Only takes effect on a new database, so it must come before journal_mode.
    "PRAGMA auto_vacuum=INCREMENTAL",
    # Readers never block the writer and the writer never blocks readers.
    "PRAGMA journal_mode=WAL",
    # In WAL mode NORMAL is durable against process crashes (SIGKILL included); only an OS
    # crash or power loss can roll back the last commits. FULL would fsync every batch.
    "PRAGMA synchronous=NORMAL",
    # Another process holding the write lock: wait for it rather than fail at once.
    "PRAGMA busy_timeout=5000",
    # 64 MiB page cache: the hot indexes of a few million rows stay in memory.
    "PRAGMA cache_size=-65536",
    "PRAGMA temp_store=MEMORY",
    # Checkpoint the WAL into the file every 64 MiB instead of every 4 MiB: a page that many
    # batches touch (random ids spread them over the indexes) is copied back once, not once
    # per checkpoint. bench/writer_drift.py: +15-40% events/s from 30,000 to 120,000 traces.
    # The WAL file may stay that large while the store is open; closing it removes the file.
    # (The connection that commits the writer's batches checkpoints nothing itself: its
    # checkpoints run on a thread of their own, see sqlite_checkpoint.py.)
    "PRAGMA wal_autocheckpoint=16384",
)

#: Rows deleted per transaction by delete_where/prune, so a big delete never holds the write
#: lock long enough to stall the writer (or another process) past its busy timeout.
_DELETE_CHUNK = 1000


@dataclass(frozen=True)
class _MultiRowInsert:
    """An INSERT written with many rows per statement.

    ``executemany`` steps the statement once per row and releases the GIL around every step;
    while the traced app keeps the GIL busy, each of those hand-offs can wait a whole switch
    interval. A few hundred rows per statement make a batch a handful of steps instead.
    Statements hold a power-of-two number of rows (37 rows: 32 + 4 + 1), so a handful of
    texts per table cover every batch size and stay in the connection's statement cache:
    preparing a fresh statement for each batch size cost a fifth of the writer's time.
    """

    head: str
    tail: str
    width: int

    def run(self, conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        most = _largest_power_of_two(
            max(1, min(_MAX_ROWS_PER_STATEMENT, _MAX_VARIABLES // self.width))
        )
        start = 0
        while start < len(rows):
            size = min(most, _largest_power_of_two(len(rows) - start))
            chunk = rows[start : start + size]
            conn.execute(self._sql(size), list(itertools.chain.from_iterable(chunk)))
            start += size

    @functools.cache  # noqa: B019 - a few module-level instances, each with ~10 sizes
    def _sql(self, rows: int) -> str:
        one = "(" + ",".join("?" * self.width) + ")"
        return f"{self.head} VALUES {','.join([one] * rows)} {self.tail}"


def _largest_power_of_two(n: int) -> int:
    """The largest power of two <= n (n >= 1)."""
    return 1 << (n.bit_length() - 1)


_MAX_ROWS_PER_STATEMENT = 512
_MAX_VARIABLES = 32_000  # SQLite >= 3.32 allows 32,766 bound variables per statement


def _upsert_sql(table: str, columns: Sequence[str], merge: dict[str, str]) -> _MultiRowInsert:
    """INSERT ... ON CONFLICT(id) DO UPDATE, where a NULL in the new row keeps the old value."""
    sets = []
    for col in columns:
        if col in ("id", "trace_id", "project"):
            continue
        sets.append(f"{col} = {merge.get(col, f'COALESCE(excluded.{col}, {col})')}")
    return _MultiRowInsert(
        head=f"INSERT INTO {table} ({', '.join(columns)})",
        tail=f"ON CONFLICT(id) DO UPDATE SET {', '.join(sets)}",
        width=len(columns),
    )


_ENSURE_TRACES = _MultiRowInsert(
    "INSERT INTO traces (id, project)", "ON CONFLICT(id) DO NOTHING", 2
)
_PAYLOADS = _MultiRowInsert("INSERT OR REPLACE INTO payloads (owner, field, data)", "", 3)


def _payload_merge(name: str) -> dict[str, str]:
    # An event that sets a payload sets both columns (inline text or blob ref), never one.
    given = f"(excluded.{name} IS NOT NULL OR excluded.{name}_ref IS NOT NULL)"
    return {
        name: f"CASE WHEN {given} THEN excluded.{name} ELSE {name} END",
        f"{name}_ref": f"CASE WHEN {given} THEN excluded.{name}_ref ELSE {name}_ref END",
    }


# Metadata merges key by key, one level deep, as model.merge_fields does within a batch
# (json_patch would merge nested objects too and delete keys whose new value is null).
# json_each loses the JSON-ness of nested values and booleans, hence the CASE.
_METADATA_MERGE = {
    "metadata": "CASE WHEN excluded.metadata IS NULL THEN metadata WHEN metadata IS NULL "
    "THEN excluded.metadata ELSE (SELECT json_group_object(key, CASE type "
    "WHEN 'true' THEN json('true') WHEN 'false' THEN json('false') "
    "WHEN 'object' THEN json(value) WHEN 'array' THEN json(value) ELSE value END) FROM ("
    "SELECT key, value, type FROM json_each(metadata) "
    "WHERE key NOT IN (SELECT key FROM json_each(excluded.metadata)) "
    "UNION ALL SELECT key, value, type FROM json_each(excluded.metadata))) END"
}

_TRACE_UPSERT = _upsert_sql(
    "traces",
    TRACE_COLUMNS,
    {
        **_payload_merge("input"),
        **_payload_merge("output"),
        **_METADATA_MERGE,
        # Union keeping first-seen order: the old tags, then the new ones not already there.
        "tags": "CASE WHEN excluded.tags IS NULL THEN tags WHEN tags IS NULL THEN excluded.tags "
        "ELSE (SELECT json_group_array(value) FROM (SELECT value FROM json_each(traces.tags) "
        "UNION ALL SELECT value FROM json_each(excluded.tags) "
        "WHERE value NOT IN (SELECT value FROM json_each(traces.tags)))) END",
        "incomplete": "MAX(COALESCE(incomplete, 0), COALESCE(excluded.incomplete, 0))",
    },
)

_OBSERVATION_UPSERT = _upsert_sql(
    "observations",
    OBSERVATION_COLUMNS,
    {
        **_payload_merge("input"),
        **_payload_merge("output"),
        **_METADATA_MERGE,
        # A cost the client sent is never replaced by one we computed.
        "cost": "CASE WHEN cost_source = 'client' AND excluded.cost_source IS NOT 'client' "
        "THEN cost ELSE COALESCE(excluded.cost, cost) END",
        "total_cost": "CASE WHEN cost_source = 'client' AND excluded.cost_source IS NOT 'client' "
        "THEN total_cost ELSE COALESCE(excluded.total_cost, total_cost) END",
        "cost_source": "CASE WHEN cost_source = 'client' THEN cost_source "
        "ELSE COALESCE(excluded.cost_source, cost_source) END",
    },
)

_SCORE_UPSERT = _upsert_sql("scores", SCORE_COLUMNS, _METADATA_MERGE)

# Recompute the derived columns of the touched traces (?1: JSON array of trace ids).
_RECOMPUTE = """
WITH touched(id) AS (SELECT value FROM json_each(?1)),
agg AS (
    SELECT o.trace_id,
           MIN(o.start_time) AS first_ns,
           MAX(COALESCE(o.end_time, o.start_time)) AS last_ns,
           COUNT(*) AS n,
           SUM(o.end_time IS NULL) AS open_n,
           SUM(o.level = 'ERROR') AS err_n,
           SUM(o.level = 'WARNING') AS warning_n,
           SUM(o.level = 'DEBUG') AS debug_n,
           SUM(o.level IS NULL OR o.level = 'DEFAULT') AS default_n,
           TOTAL(o.total_tokens) AS tokens,
           TOTAL(o.total_cost) AS cost
    FROM observations o WHERE o.trace_id IN (SELECT id FROM touched) GROUP BY o.trace_id
),
buckets AS (
    SELECT trace_id, json_group_object(key, v) AS usage FROM (
        SELECT o.trace_id, j.key, TOTAL(j.value) AS v
        FROM observations o, json_each(o.usage) j
        WHERE o.trace_id IN (SELECT id FROM touched) AND o.usage IS NOT NULL
              AND j.type IN ('integer', 'real')  -- numbers only, as on PostgreSQL
        GROUP BY o.trace_id, j.key
    ) GROUP BY trace_id
),
calc AS (
    SELECT t.id,
           COALESCE(MIN(COALESCE(t.start_time, agg.first_ns),
                        COALESCE(agg.first_ns, t.start_time)), 0) AS start_ns,
           MAX(COALESCE(t.end_time, agg.last_ns, 0),
               COALESCE(agg.last_ns, t.end_time, 0)) AS end_ns,
           COALESCE(agg.n, 0) AS n, COALESCE(agg.open_n, 0) AS open_n,
           COALESCE(agg.err_n, 0) AS err_n, COALESCE(agg.warning_n, 0) AS warning_n,
           COALESCE(agg.debug_n, 0) AS debug_n, COALESCE(agg.default_n, 0) AS default_n,
           COALESCE(agg.tokens, 0) AS tokens,
           COALESCE(agg.cost, 0) AS cost, buckets.usage AS usage, t.incomplete AS incomplete
    FROM traces t JOIN touched ON t.id = touched.id
    LEFT JOIN agg ON agg.trace_id = t.id LEFT JOIN buckets ON buckets.trace_id = t.id
),
timed AS (
    SELECT calc.*,
           -- 0 (read back as None) while the start or the end is unknown
           CASE WHEN start_ns > 0 AND end_ns > 0 THEN MAX(end_ns - start_ns, 0) / 1e6
                ELSE 0 END AS latency_ms
    FROM calc
)
UPDATE traces SET
    start_ns = calc.start_ns,
    end_ns = calc.end_ns,
    latency_ms = calc.latency_ms,
    latency_bin = CASE WHEN COALESCE(calc.incomplete, 0) = 0 AND calc.open_n > 0 THEN -1
                       ELSE {latency_bin} END,
    observation_count = calc.n,
    open_count = calc.open_n,
    error_count = calc.err_n,
    warning_count = calc.warning_n,
    debug_count = calc.debug_n,
    default_count = calc.default_n,
    total_tokens = calc.tokens,
    total_cost = calc.cost,
    usage = calc.usage,
    status = CASE WHEN calc.incomplete THEN 'incomplete' WHEN calc.open_n > 0 THEN 'running'
                  WHEN calc.err_n > 0 THEN 'error' ELSE 'ok' END
FROM timed AS calc WHERE traces.id = calc.id
""".format(latency_bin=LATENCY_BIN.format("calc.latency_ms"))


def _hours_delta(sign: str) -> str:
    """Add (``+``) or take away (``-``) the touched traces (?1: JSON array of ids) from the
    hourly rollup: taken away before the derived columns are recomputed, added after."""
    return f"""
INSERT INTO trace_hours (hour, project, latency_bin, traces, observations, errors, tokens, cost)
SELECT start_ns / {HOUR_NS}, project, latency_bin, {sign}COUNT(*), {sign}TOTAL(observation_count),
       {sign}TOTAL(error_count), {sign}TOTAL(total_tokens), {sign}TOTAL(total_cost)
FROM traces WHERE id IN (SELECT value FROM json_each(?1)) AND start_ns IS NOT NULL
GROUP BY 1, 2, 3
ON CONFLICT (hour, latency_bin, project) DO UPDATE SET
    traces = traces + excluded.traces, observations = observations + excluded.observations,
    errors = errors + excluded.errors, tokens = tokens + excluded.tokens,
    cost = cost + excluded.cost
"""


_HOURS_ADD = _hours_delta("+")
_HOURS_TAKE = _hours_delta("-")
# After a delete took them away: the rollup rows of those traces' hours left empty.
_HOURS_EMPTIED = f"""
DELETE FROM trace_hours WHERE traces = 0 AND hour IN (
    SELECT DISTINCT start_ns / {HOUR_NS} FROM traces
    WHERE id IN (SELECT value FROM json_each(?1)) AND start_ns IS NOT NULL)
"""

# Timeseries: the sums in SQL (an index-only scan of traces_timeseries), the percentiles in
# Python from (bucket, group, latency) tuples. SQLite has no percentile aggregate, and ranking
# with window functions sorts every row of the range in a temp b-tree: 4x slower at 200,000
# traces (bench/postgres_query.py).
_TIMESERIES_SUMS = """
SELECT (t.start_ns - :start) / :interval AS b, {group} AS g, COUNT(*) AS traces,
       TOTAL(t.observation_count) AS observations, TOTAL(t.error_count) AS errors,
       TOTAL(t.total_tokens) AS tokens, TOTAL(t.total_cost) AS cost
FROM traces t
WHERE t.start_ns >= :start AND t.start_ns < :end {project}
GROUP BY b, g
"""
_TIMESERIES_LATENCIES = """
SELECT (t.start_ns - :start) / :interval AS b, {group} AS g, t.latency_ms
FROM traces t
WHERE t.start_ns >= :start AND t.start_ns < :end AND t.status <> 'running' {project}
"""
# Grouped by model, a row is a generation (its latency, level, tokens, cost), bucketed by the
# start of its trace so the per-model series line up with the trace series.
_TIMESERIES_BY_MODEL_SUMS = """
SELECT (t.start_ns - :start) / :interval AS b, o.model AS g,
       COUNT(DISTINCT t.id) AS traces, COUNT(*) AS observations,
       TOTAL(o.level = 'ERROR') AS errors, TOTAL(o.total_tokens) AS tokens,
       TOTAL(o.total_cost) AS cost
FROM traces t JOIN observations o ON o.trace_id = t.id
WHERE t.start_ns >= :start AND t.start_ns < :end AND o.model IS NOT NULL {project}
GROUP BY b, g
"""
_TIMESERIES_BY_MODEL_LATENCIES = """
SELECT (t.start_ns - :start) / :interval AS b, o.model AS g,
       (o.end_time - o.start_time) / 1e6 AS latency_ms
FROM traces t JOIN observations o ON o.trace_id = t.id
WHERE t.start_ns >= :start AND t.start_ns < :end AND o.model IS NOT NULL
      AND o.end_time IS NOT NULL AND o.start_time IS NOT NULL {project}
"""


def _timeseries_sql(query: TimeseriesQuery) -> tuple[str, str]:
    """(sums per bucket and group, one latency per row) for ``query``."""
    if query.group_by is TimeseriesGroup.MODEL:
        sums, latencies = _TIMESERIES_BY_MODEL_SUMS, _TIMESERIES_BY_MODEL_LATENCIES
    else:
        sums, latencies = _TIMESERIES_SUMS, _TIMESERIES_LATENCIES
    parts = {
        "group": "t.name" if query.group_by is TimeseriesGroup.NAME else "NULL",
        "project": "AND t.project = :project" if query.project is not None else "",
    }
    return sums.format(**parts), latencies.format(**parts)


def _nearest_rank(values: list[float], p: float) -> float | None:
    """The value at rank ceil(p * n), as PostgreSQL's percentile_disc picks it."""
    if not values:
        return None
    return values[math.ceil(p * len(values)) - 1]


class SQLiteStore:
    """A :class:`~traceyard.store.base.Store` in one SQLite file."""

    backend = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        blob_threshold_bytes: int = 8192,
        prices: PriceTable | None = None,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._rows = RowBuilder(blob_threshold_bytes, prices or PriceTable.default())
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self._generation = 0  # bumped by before_fork(): thread-local connections reopen
        self._checkpointer = Checkpointer(self.path)
        self._migrate()

    @classmethod
    def in_dir(cls, data_dir: str | os.PathLike[str], **kwargs: Any) -> SQLiteStore:
        return cls(Path(data_dir) / DB_FILENAME, **kwargs)

    # ------------------------------------------------------------------ connections

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN ourselves so writes can be BEGIN IMMEDIATE.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        for pragma in _PRAGMAS:
            conn.execute(pragma)
        conn.row_factory = sqlite3.Row
        with self._lock:
            self._connections.append(conn)
        return conn

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection (SQLite connections must not be shared mid-statement)."""
        if self._closed:
            raise StoreClosedError("the SQLite store has been closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or self._local.generation != self._generation:
            conn = self._local.conn = self._connect()
            self._local.generation = self._generation
        return conn

    def before_fork(self) -> None:
        """Close every connection before ``fork()``; each process then opens its own.

        SQLite keeps per-process lock and WAL-index state: a connection (even a new one in
        the child, which shares that state) carried across fork can lose commits. The writer
        is paused while this runs; connections reopen lazily on next use.
        """
        with self._lock:
            connections, self._connections = self._connections, []
            self._generation += 1
        for conn in connections:
            conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            # Another process held the write lock past busy_timeout: worth retrying later.
            raise StoreUnavailableError(f"SQLite database {self.path} is busy: {exc}") from exc
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _migrate(self) -> None:
        with self._transaction() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has schema version {version}, newer than this traceyard "
                    f"({SCHEMA_VERSION}); upgrade traceyard to read it"
                )
            for number in range(version, SCHEMA_VERSION):
                for statement in split_statements(MIGRATIONS[number]):
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        self._checkpointer.close()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()

    # ------------------------------------------------------------------ writes

    def write(self, events: Sequence[Event]) -> None:
        if events:
            self.commit(self.prepare(events))

    def prepare(self, events: Sequence[Event]) -> RowBatch:
        """The rows of a batch (merged, serialised, compressed, priced): no database work."""
        return self._rows.build(events)

    def commit(self, batch: RowBatch) -> None:
        """Write prepared rows in one transaction; the WAL is checkpointed off this path."""
        with self._checkpointer.gate(), self._transaction() as conn:
            if getattr(self._local, "checkpoints_apart", None) is not conn:
                conn.execute("PRAGMA wal_autocheckpoint=0")
                self._local.checkpoints_apart = conn
            self._apply(conn, batch)
        self._checkpointer.committed()

    def _apply(self, conn: sqlite3.Connection, batch: RowBatch) -> None:
        _ENSURE_TRACES.run(conn, list(batch.trace_projects.items()))
        _TRACE_UPSERT.run(conn, batch.traces)
        _OBSERVATION_UPSERT.run(conn, batch.observations)
        _SCORE_UPSERT.run(conn, batch.scores)
        _PAYLOADS.run(conn, batch.payloads)
        if batch.price_later:
            self._price_stored(conn, batch.price_later)
        if batch.trace_projects:
            touched = (json.dumps(list(batch.trace_projects)),)
            conn.execute(_HOURS_TAKE, touched)
            conn.execute(_RECOMPUTE, touched)
            conn.execute(_HOURS_ADD, touched)

    def _price_stored(self, conn: sqlite3.Connection, ids: list[str]) -> None:
        """Price observations whose model and usage arrived in different batches."""
        rows = conn.execute(
            "SELECT id, model, usage FROM observations WHERE id IN (SELECT value FROM "
            "json_each(?)) AND model IS NOT NULL AND usage IS NOT NULL "
            "AND cost_source IS NOT 'client'",
            (json.dumps(ids),),
        ).fetchall()
        updates = []
        for row in rows:
            cost = self._rows.prices.cost(row["model"], json.loads(row["usage"]))
            if cost:
                updates.append((json.dumps(cost), cost_total(cost), row["id"]))
        conn.executemany(
            "UPDATE observations SET cost = ?, total_cost = ?, cost_source = 'auto' WHERE id = ?",
            updates,
        )

    # ------------------------------------------------------------------ reads

    def get_trace(self, trace_id: str) -> TraceDetail | None:
        conn = self._conn()
        row = conn.execute("SELECT * FROM traces WHERE id = ?", (trace_id,)).fetchone()
        if row is None:
            return None
        obs_rows = conn.execute(
            "SELECT * FROM observations WHERE trace_id = ? ORDER BY start_time, id", (trace_id,)
        ).fetchall()
        payloads = self._payloads(conn, [trace_id, *(r["id"] for r in obs_rows)])
        scores = [
            convert.score(r)
            for r in conn.execute(
                "SELECT * FROM scores WHERE trace_id = ? ORDER BY timestamp, id", (trace_id,)
            )
        ]
        return TraceDetail(
            **convert.trace_fields(row, payloads),
            scores=scores,
            observations=convert.observations(obs_rows, payloads),
        )

    def get_observation(self, observation_id: str) -> Observation | None:
        conn = self._conn()
        row = conn.execute("SELECT * FROM observations WHERE id = ?", (observation_id,)).fetchone()
        if row is None:
            return None
        return convert.observation(row, self._payloads(conn, [observation_id]))

    def list_traces(self, query: TraceQuery) -> Page[Trace]:
        conn = self._conn()
        where, params = _trace_filters(query, few_prompt_links=_few_prompt_links(conn, query))
        column = convert.SORT_COLUMNS[query.sort]
        direction = "DESC" if query.descending else "ASC"
        if query.cursor:
            value, last_id = decode_cursor(query.cursor, 2)
            op = "<" if query.descending else ">"
            where.append(f"({column}, id) {op} (?, ?)")
            params += [value, last_id]
        sql = (
            f"SELECT * FROM traces t {_where(where)} "
            f"ORDER BY {column} {direction}, id {direction} LIMIT ?"
        )
        rows = conn.execute(sql, [*params, query.limit + 1]).fetchall()
        page, more = rows[: query.limit], len(rows) > query.limit
        payloads = self._payloads(
            conn, [r["id"] for r in page if r["input_ref"] or r["output_ref"]]
        )
        traces = [Trace(**convert.trace_fields(r, payloads)) for r in page]
        cursor = encode_cursor([page[-1][column], page[-1]["id"]]) if more else None
        return Page[Trace](data=traces, next_cursor=cursor)

    def list_sessions(
        self, project: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page[SessionSummary]:
        rows, next_cursor = self._group_page("session_id", _SESSION_COLUMNS, project, limit, cursor)
        sessions = [convert.session(r, json.loads(r["users"])) for r in rows]
        return Page[SessionSummary](data=sessions, next_cursor=next_cursor)

    def get_session(self, session_id: str, project: str | None = None) -> SessionDetail | None:
        return convert.session_detail(
            session_id, _all_pages(self, convert.session_query(session_id, project))
        )

    def list_users(
        self, project: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page[UserSummary]:
        rows, next_cursor = self._group_page("user_id", _USER_COLUMNS, project, limit, cursor)
        return Page[UserSummary](data=[convert.user(r) for r in rows], next_cursor=next_cursor)

    def _group_page(
        self, key: str, columns: str, project: str | None, limit: int, cursor: str | None
    ) -> tuple[list[sqlite3.Row], str | None]:
        """A page of sessions or users (``key``), newest first; see :mod:`._groups`."""
        conn = self._conn()
        base: list[str] = [f"{key} IS NOT NULL"]
        params: list[Any] = []
        if project is not None:
            base.append("project = ?")
            params.append(project)
        after = tuple(decode_cursor(cursor, 2)) if cursor else None

        def walk(position: tuple[int, str] | None, n: int) -> list[Any]:
            where, values = list(base), list(params)
            if position is not None:
                where.append("(start_ns, id) < (?, ?)")
                values += list(position)
            return conn.execute(
                f"SELECT {key}, start_ns, id FROM traces {_where(where)} "
                "ORDER BY start_ns DESC, id DESC LIMIT ?",
                [*values, n],
            ).fetchall()

        def aggregate(keys: list[str]) -> dict[str, sqlite3.Row]:
            where = [*base, f"{key} IN (SELECT value FROM json_each(?))"]
            rows = conn.execute(
                f"SELECT {columns} FROM traces {_where(where)} GROUP BY {key}",
                [*params, json.dumps(keys)],
            ).fetchall()
            return {r[key]: r for r in rows}

        def full_scan() -> list[sqlite3.Row]:
            having, values = "", list(params)
            if after is not None:
                having = f"HAVING (MAX(start_ns), {key}) < (?, ?)"
                values += list(after)
            return conn.execute(
                f"SELECT {columns} FROM traces {_where(base)} GROUP BY {key} {having} "
                f"ORDER BY last_start DESC, {key} DESC LIMIT ?",
                [*values, limit + 1],
            ).fetchall()

        rows: list[Any] = recent_groups(walk, aggregate, limit, after, full_scan)  # type: ignore[arg-type]
        page = rows[:limit]
        more = len(rows) > limit
        return page, encode_cursor([page[-1]["last_start"], page[-1][key]]) if more else None

    def list_scores(
        self,
        trace_id: str | None = None,
        name: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Score]:
        where: list[str] = []
        params: list[Any] = []
        if trace_id is not None:
            where.append("trace_id = ?")
            params.append(trace_id)
        if name is not None:
            where.append("name = ?")
            params.append(name)
        if cursor:
            last_ts, last_id = decode_cursor(cursor, 2)
            where.append("(COALESCE(timestamp, 0), id) < (?, ?)")
            params += [last_ts, last_id]
        rows = (
            self._conn()
            .execute(
                f"SELECT * FROM scores {_where(where)} "
                f"ORDER BY COALESCE(timestamp, 0) DESC, id DESC LIMIT ?",
                [*params, limit + 1],
            )
            .fetchall()
        )
        page = rows[:limit]
        next_cursor = (
            encode_cursor([page[-1]["timestamp"] or 0, page[-1]["id"]])
            if len(rows) > limit
            else None
        )
        return Page[Score](data=[convert.score(r) for r in page], next_cursor=next_cursor)

    def timeseries(self, query: TimeseriesQuery) -> list[TimeseriesPoint]:
        return _hours.timeseries(query, self._timeseries_by_hours, self._timeseries_from_traces)

    def _timeseries_by_hours(self, query: TimeseriesQuery) -> list[TimeseriesPoint] | None:
        """From the hourly rollup (see :mod:`._hours`); None when the buckets' edges are too
        far off the hour for it to help."""
        plan = _hours.plan(
            datetime_to_ns(query.start), datetime_to_ns(query.end), query.interval_s * 10**9
        )
        if plan is None:
            return None
        project = "" if query.project is None else " AND project = :project"
        params = {"first": plan.hours[0], "last": plan.hours[1], "project": query.project}
        cursor = self._conn().cursor()
        cursor.row_factory = None
        hour_sums = cursor.execute(
            "SELECT hour, SUM(traces), SUM(observations), SUM(errors), TOTAL(tokens), "
            "TOTAL(cost) FROM trace_hours WHERE hour >= :first AND hour < :last"
            f"{project} GROUP BY hour",
            params,
        ).fetchall()
        hour_bins = cursor.execute(
            "SELECT hour, latency_bin, SUM(traces) FROM trace_hours WHERE hour >= :first "
            f"AND hour < :last AND latency_bin >= 0{project} GROUP BY hour, latency_bin",
            params,
        )

        def edge_traces(start: int, end: int) -> list[Any]:
            return (
                self._conn()
                .execute(
                    "SELECT latency_bin, observation_count, error_count, total_tokens, total_cost "
                    f"FROM traces WHERE start_ns >= :start AND start_ns < :end{project}",
                    {"start": start, "end": end, "project": query.project},
                )
                .fetchall()
            )

        _hours.add_rows(plan, hour_sums, hour_bins, edge_traces)

        def latencies(picks: list[_hours.Pick]) -> list[float | None]:
            found = []
            for latency_bin, start, end, rank in picks:
                row = cursor.execute(
                    "SELECT latency_ms FROM traces WHERE latency_bin >= 0 AND latency_bin = :bin "
                    f"AND start_ns >= :start AND start_ns < :end{project} "
                    "ORDER BY latency_ms LIMIT 1 OFFSET :offset",
                    {"bin": latency_bin, "start": start, "end": end, "offset": rank - 1,
                     "project": query.project},
                ).fetchone()  # fmt: skip
                found.append(None if row is None else row[0])
            return found

        return _hours.points(plan.buckets, latencies)

    def _timeseries_from_traces(self, query: TimeseriesQuery) -> list[TimeseriesPoint]:
        start, interval = datetime_to_ns(query.start), query.interval_s * 1_000_000_000
        params = {
            "start": start,
            "end": datetime_to_ns(query.end),
            "interval": interval,
            "project": query.project,
        }
        sums_sql, latencies_sql = _timeseries_sql(query)
        conn = self._conn()
        sums = conn.execute(sums_sql, params).fetchall()
        cursor = conn.cursor()
        cursor.row_factory = None  # plain tuples: a week is ~200,000 of them
        latencies: dict[tuple[int, str | None], list[float]] = {}
        for bucket, group, latency in cursor.execute(latencies_sql, params):
            latencies.setdefault((bucket, group), []).append(latency)
        points = []
        for r in sorted(sums, key=lambda r: (r["b"], r["g"] is not None, r["g"])):
            values = sorted(latencies.get((r["b"], r["g"]), ()))
            points.append(
                TimeseriesPoint(
                    bucket_start=ns_to_datetime(start + r["b"] * interval),
                    group=r["g"],
                    traces=r["traces"],
                    observations=int(r["observations"]),
                    errors=int(r["errors"]),
                    latency_p50_ms=_nearest_rank(values, 0.5),
                    latency_p95_ms=_nearest_rank(values, 0.95),
                    total_tokens=r["tokens"],
                    total_cost=r["cost"],
                )
            )
        return points

    def _payloads(self, conn: sqlite3.Connection, owners: list[str]) -> dict[tuple[str, str], str]:
        if not owners:
            return {}
        rows = conn.execute(
            "SELECT owner, field, data FROM payloads WHERE owner IN "
            "(SELECT value FROM json_each(?))",
            (json.dumps(owners),),
        ).fetchall()
        return {(r["owner"], r["field"]): decompress_text(r["data"]) for r in rows}

    # ------------------------------------------------------------------ deletes and sizes

    def delete_traces(self, trace_ids: Sequence[str]) -> int:
        if not trace_ids:
            return 0
        ids = json.dumps(list(trace_ids))
        with self._transaction() as conn:
            conn.execute(_HOURS_TAKE, (ids,))
            conn.execute(_HOURS_EMPTIED, (ids,))
            conn.execute(
                "DELETE FROM payloads WHERE owner IN (SELECT id FROM observations WHERE trace_id"
                " IN (SELECT value FROM json_each(?1)))"
                " OR owner IN (SELECT value FROM json_each(?1))",
                (ids,),
            )
            for table, column in (
                ("observations", "trace_id"),
                ("scores", "trace_id"),
                ("media", "trace_id"),
            ):
                conn.execute(
                    f"DELETE FROM {table} WHERE {column} IN (SELECT value FROM json_each(?))",
                    (ids,),
                )
            deleted = conn.execute(
                "DELETE FROM traces WHERE id IN (SELECT value FROM json_each(?))", (ids,)
            ).rowcount
        return int(deleted)

    def delete_where(self, query: TraceQuery) -> int:
        where, params = _trace_filters(query)
        return self._delete_selected(f"SELECT id FROM traces t {_where(where)}", params)

    def prune(self, max_traces: int | None = None, older_than: datetime | None = None) -> int:
        deleted = 0
        if older_than is not None:
            deleted += self._delete_selected(
                "SELECT id FROM traces WHERE start_ns < ?", [datetime_to_ns(older_than)]
            )
        if max_traces is not None:
            # The newest max_traces stay; everything after them in start order goes.
            while True:
                ids = [
                    r[0]
                    for r in self._conn().execute(
                        "SELECT id FROM traces ORDER BY start_ns DESC, id DESC LIMIT ? OFFSET ?",
                        (_DELETE_CHUNK, max_traces),
                    )
                ]
                if not ids:
                    break
                deleted += self.delete_traces(ids)
        if deleted:
            self._reclaim()
        return deleted

    def _delete_selected(self, select_ids: str, params: Sequence[Any]) -> int:
        total = 0
        while True:
            rows = self._conn().execute(f"{select_ids} LIMIT {_DELETE_CHUNK}", params)
            ids = [r[0] for r in rows]
            if not ids:
                return total
            total += self.delete_traces(ids)

    def _reclaim(self) -> None:
        """Give the pages freed by deletes back to the file system (auto_vacuum=INCREMENTAL;
        a database created before that pragma keeps its free pages for reuse instead)."""
        # Each step of the pragma frees one page and execute() steps it once; executescript
        # runs it to the end (autocommit connection: there is no transaction for it to end).
        self._conn().executescript("PRAGMA incremental_vacuum;")

    def counts(self) -> StoreCounts:
        counters = dict(self._conn().execute("SELECT name, value FROM counters").fetchall())
        size = sum(
            p.stat().st_size for p in self.path.parent.glob(self.path.name + "*") if p.is_file()
        )
        return StoreCounts(
            backend=self.backend,
            traces=counters.get("traces", 0),
            observations=counters.get("observations", 0),
            scores=counters.get("scores", 0),
            size_bytes=size,
            location=str(self.path),
        )

    # ------------------------------------------------------------------ prompts and media

    def save_prompt(
        self,
        project: str,
        name: str,
        prompt: Any,
        *,
        type: str = "text",
        config: dict[str, Any] | None = None,
        labels: Sequence[str] = (),
        tags: Sequence[str] = (),
        commit_message: str | None = None,
    ) -> Prompt:
        with self._transaction() as conn:
            existing = self._prompt_labels(conn, project, name)
            version, own_labels, changes = plan_new_version(existing, labels)
            self._relabel(conn, project, name, changes)
            conn.execute(
                "INSERT INTO prompts (project, name, version, type, prompt, config, labels, tags, "
                "commit_message, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    project,
                    name,
                    version,
                    type,
                    dumps(prompt),
                    dumps(config or {}),
                    json.dumps(own_labels),
                    json.dumps(list(dict.fromkeys(tags))),
                    commit_message,
                    time.time_ns(),
                ),
            )
            row = self._prompt_row(conn, project, name, version)
        assert row is not None
        return convert.prompt(row)

    def get_prompt(
        self, project: str, name: str, *, version: int | None = None, label: str | None = None
    ) -> Prompt | None:
        conn = self._conn()
        if version is not None:
            row = self._prompt_row(conn, project, name, version)
        else:
            row = conn.execute(
                "SELECT * FROM prompts WHERE project = ? AND name = ? AND EXISTS "
                "(SELECT 1 FROM json_each(labels) WHERE value = ?)",
                (project, name, label or DEFAULT_LABEL),
            ).fetchone()
        return convert.prompt(row) if row is not None else None

    def list_prompts(self, project: str | None, name: str | None = None) -> list[Prompt]:
        where, params = prompt_where(project, name, "project", "name", "?")
        rows = self._conn().execute(
            f"SELECT * FROM prompts {_where(where)} ORDER BY project, name, version", params
        )
        return [convert.prompt(r) for r in rows]

    def prompt_usage(
        self, project: str | None, name: str | None = None, *, limit: int = 1000
    ) -> list[PromptUsage]:
        conn = self._conn()
        where, params = prompt_where(project, name, "project", "name", "?")
        saved = conn.execute(f"SELECT project, name, version FROM prompts {_where(where)}", params)
        usage = []
        for key in usage_keys([tuple(r) for r in saved]):
            versioned = key[2] is not None
            args = [*(key[1:] if versioned else key[1:2]), key[0], limit]
            row = conn.execute(prompt_usage_sql("?", versioned), args).fetchone()
            if row["observations"]:
                usage.append(convert.prompt_usage(key, row, limit))
        return usage

    def set_prompt_labels(
        self, project: str, name: str, version: int, labels: Sequence[str]
    ) -> Prompt | None:
        with self._transaction() as conn:
            existing = self._prompt_labels(conn, project, name)
            if version not in existing:
                return None
            self._relabel(conn, project, name, plan_set_labels(existing, version, labels))
            row = self._prompt_row(conn, project, name, version)
        return convert.prompt(row) if row is not None else None

    def _prompt_labels(
        self, conn: sqlite3.Connection, project: str, name: str
    ) -> dict[int, list[str]]:
        rows = conn.execute(
            "SELECT version, labels FROM prompts WHERE project = ? AND name = ?", (project, name)
        ).fetchall()
        return {r["version"]: json.loads(r["labels"]) for r in rows}

    def _relabel(
        self, conn: sqlite3.Connection, project: str, name: str, changes: dict[int, list[str]]
    ) -> None:
        conn.executemany(
            "UPDATE prompts SET labels = ? WHERE project = ? AND name = ? AND version = ?",
            [(json.dumps(labels), project, name, v) for v, labels in changes.items()],
        )

    def _prompt_row(
        self, conn: sqlite3.Connection, project: str, name: str, version: int
    ) -> sqlite3.Row | None:
        row: sqlite3.Row | None = conn.execute(
            "SELECT * FROM prompts WHERE project = ? AND name = ? AND version = ?",
            (project, name, version),
        ).fetchone()
        return row

    def save_media(self, media: MediaRecord) -> None:
        # A re-save (the upload after the metadata) fills gaps; created_at stays the first one.
        columns = convert.MEDIA_COLUMNS
        sets = ", ".join(
            f"{c} = COALESCE(excluded.{c}, {c})" for c in columns if c not in ("id", "created_at")
        )
        with self._transaction() as conn:
            conn.execute(
                f"INSERT INTO media ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
                f" ON CONFLICT(id) DO UPDATE SET {sets}",
                convert.media_row(media, time.time_ns()),
            )

    def get_media(self, media_id: str) -> MediaRecord | None:
        row = self._conn().execute("SELECT * FROM media WHERE id = ?", (media_id,)).fetchone()
        return convert.media(row) if row is not None else None


_SESSION_COLUMNS = (
    "session_id, MIN(project) AS project, COUNT(*) AS n, "
    "json_group_array(DISTINCT user_id) AS users, MIN(start_ns) AS first_ns, "
    "MAX(start_ns) AS last_start, MAX(end_ns) AS last_ns, TOTAL(total_tokens) AS tokens, "
    "TOTAL(total_cost) AS cost, SUM(error_count > 0) AS errors"
)
_USER_COLUMNS = (
    "user_id, MIN(project) AS project, COUNT(*) AS n, "
    "COUNT(DISTINCT session_id) AS sessions, MIN(start_ns) AS first_ns, "
    "MAX(start_ns) AS last_start, TOTAL(total_tokens) AS tokens, "
    "TOTAL(total_cost) AS cost, SUM(error_count > 0) AS errors"
)

# ---------------------------------------------------------------------- query building


def _all_pages(store: SQLiteStore, query: TraceQuery) -> list[Trace]:
    traces: list[Trace] = []
    while True:
        page = store.list_traces(query)
        traces.extend(page.data)
        if page.next_cursor is None:
            return traces
        query = query.model_copy(update={"cursor": page.next_cursor})


def _where(clauses: list[str]) -> str:
    return f"WHERE {' AND '.join(clauses)}" if clauses else ""


#: Below this many observations naming the filtered prompt, a listing starts from them (and
#: sorts what it finds); from this many on it walks the traces in order and probes the index.
_FEW_PROMPT_LINKS = 5000


def _few_prompt_links(conn: sqlite3.Connection, q: TraceQuery) -> bool:
    """Does the prompt filter (if any) match few observations? One bounded index range scan."""
    if q.prompt_name is None:
        return False
    clause, values = prompt_match(q.prompt_name, q.prompt_version, "?")
    found = conn.execute(
        f"SELECT COUNT(*) FROM (SELECT 1 FROM observations o WHERE {clause} LIMIT ?)",
        [*values, _FEW_PROMPT_LINKS],
    ).fetchone()[0]
    return bool(found < _FEW_PROMPT_LINKS)


def _trace_filters(q: TraceQuery, few_prompt_links: bool = False) -> tuple[list[str], list[Any]]:
    """WHERE clauses of a listing. ``few_prompt_links``: drive the query from the prompt's
    observations (an IN list), with the project index kept out of the planner's way (``+``)."""
    where: list[str] = []
    params: list[Any] = []

    def add(clause: str, *values: Any) -> None:
        where.append(clause)
        params.extend(values)

    if q.project is not None:
        add("+t.project = ?" if few_prompt_links else "t.project = ?", q.project)
    if q.name:
        add("t.name LIKE ? ESCAPE '\\'", f"%{like_escape(q.name)}%")
    if q.user_id is not None:
        add("t.user_id = ?", q.user_id)
    if q.session_id is not None:
        add("t.session_id = ?", q.session_id)
    for tag in q.tags:
        add("EXISTS (SELECT 1 FROM json_each(t.tags) WHERE value = ?)", tag)
    if q.status is not None:
        add("t.status = ?", q.status.value)
    if q.level is not None:
        add(level_filter(q.level))
    if q.start_after is not None:
        add("t.start_ns >= ?", datetime_to_ns(q.start_after))
    if q.start_before is not None:
        add("t.start_ns < ?", datetime_to_ns(q.start_before))
    if q.min_latency_ms is not None:
        add("t.latency_ms >= ?", q.min_latency_ms)
    if q.max_latency_ms is not None:
        add("t.latency_ms <= ?", q.max_latency_ms)
    if q.min_cost is not None:
        add("t.total_cost >= ?", q.min_cost)
    if q.model is not None:
        add(
            "EXISTS (SELECT 1 FROM observations o WHERE o.model = ? AND o.trace_id = t.id)", q.model
        )
    if q.prompt_name is not None:
        clause, values = prompt_match(q.prompt_name, q.prompt_version, "?")
        if few_prompt_links:
            add(f"t.id IN (SELECT o.trace_id FROM observations o WHERE {clause})", *values)
        elif q.prompt_version is None:
            # by name alone: probe the trace's few observations (the prompt index would scan
            # every link of the name for each trace)
            add("EXISTS (SELECT 1 FROM observations o WHERE o.trace_id = t.id "
                "AND +o.prompt_name = ?)", q.prompt_name)  # fmt: skip
        else:
            add(f"EXISTS (SELECT 1 FROM observations o WHERE {clause} AND o.trace_id = t.id)",
                *values)  # fmt: skip
    for key, value in q.metadata.items():
        # JSON booleans compare as true/false (json_extract would give 1/0).
        add(
            "(CASE json_type(t.metadata, ?1) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
            "ELSE CAST(json_extract(t.metadata, ?1) AS TEXT) END) = ?".replace("?1", "?"),
            _json_path(key),
            _json_path(key),
            value,
        )
    if q.text:
        pattern = f"%{like_escape(q.text)}%"
        add(
            "(t.name LIKE ? ESCAPE '\\' OR t.input LIKE ? ESCAPE '\\' "
            "OR t.output LIKE ? ESCAPE '\\')",
            pattern,
            pattern,
            pattern,
        )
    return where, params


def _json_path(key: str) -> str:
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def split_statements(script: str) -> list[str]:
    """A migration script → its statements (trigger bodies contain ``;`` of their own)."""
    statements: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n\t;"):
                statements.append(pending.strip())
            pending = ""
    return statements

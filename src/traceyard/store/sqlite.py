"""The SQLite store: the embedded default, one file in a portable data directory.

One writer (the pipeline's thread) and any number of readers, each on its own connection:
WAL lets readers run while a batch commits. Several processes may write to the same file;
``BEGIN IMMEDIATE`` plus a busy timeout serialises them, and a batch that still cannot get the
lock raises to the writer, which keeps it and retries (it never reaches the app).

We use the ``sqlite3`` driver directly rather than SQLAlchemy Core: the writer's ceiling
(bench/writer_ceiling.py) is measured against plain ``executemany`` and every layer between
costs GIL time that the traced app would pay for.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from traceyard.cost.pricing import PriceTable
from traceyard.errors import StoreClosedError, StoreError
from traceyard.model import (
    Event,
    Level,
    Observation,
    ObservationType,
    Score,
    SessionDetail,
    SessionSummary,
    Trace,
    TraceDetail,
    TraceStatus,
    UserSummary,
    ns_to_datetime,
)
from traceyard.store._rows import (
    OBSERVATION_COLUMNS,
    SCORE_COLUMNS,
    TRACE_COLUMNS,
    RowBatch,
    RowBuilder,
    cost_total,
    decompress,
)
from traceyard.store.base import (
    Page,
    StoreCounts,
    TraceQuery,
    TraceSort,
    decode_cursor,
    encode_cursor,
)
from traceyard.store.sqlite_schema import MIGRATIONS, SCHEMA_VERSION

DB_FILENAME = "traceyard.db"

# Each pragma, and why:
_PRAGMAS = (
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
)

_SORT_COLUMNS = {
    TraceSort.START_TIME: "start_ns",
    TraceSort.LATENCY: "latency_ms",
    TraceSort.COST: "total_cost",
    TraceSort.TOKENS: "total_tokens",
}


def _upsert_sql(table: str, columns: Sequence[str], merge: dict[str, str]) -> str:
    """INSERT ... ON CONFLICT(id) DO UPDATE, where a NULL in the new row keeps the old value."""
    sets = []
    for col in columns:
        if col in ("id", "trace_id", "project"):
            continue
        sets.append(f"{col} = {merge.get(col, f'COALESCE(excluded.{col}, {col})')}")
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT(id) DO UPDATE SET {', '.join(sets)}"
    )


def _payload_merge(name: str) -> dict[str, str]:
    # An event that sets a payload sets both columns (inline text or blob ref), never one.
    given = f"(excluded.{name} IS NOT NULL OR excluded.{name}_ref IS NOT NULL)"
    return {
        name: f"CASE WHEN {given} THEN excluded.{name} ELSE {name} END",
        f"{name}_ref": f"CASE WHEN {given} THEN excluded.{name}_ref ELSE {name}_ref END",
    }


_METADATA_MERGE = {
    "metadata": "CASE WHEN excluded.metadata IS NULL THEN metadata WHEN metadata IS NULL "
    "THEN excluded.metadata ELSE json_patch(metadata, excluded.metadata) END"
}

_TRACE_UPSERT = _upsert_sql(
    "traces",
    TRACE_COLUMNS,
    {
        **_payload_merge("input"),
        **_payload_merge("output"),
        **_METADATA_MERGE,
        "tags": "CASE WHEN excluded.tags IS NULL THEN tags WHEN tags IS NULL THEN excluded.tags "
        "ELSE (SELECT json_group_array(value) FROM (SELECT value FROM json_each(traces.tags) "
        "UNION SELECT value FROM json_each(excluded.tags))) END",
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
           TOTAL(o.total_tokens) AS tokens,
           TOTAL(o.total_cost) AS cost
    FROM observations o WHERE o.trace_id IN (SELECT id FROM touched) GROUP BY o.trace_id
),
buckets AS (
    SELECT trace_id, json_group_object(key, v) AS usage FROM (
        SELECT o.trace_id, j.key, TOTAL(j.value) AS v
        FROM observations o, json_each(o.usage) j
        WHERE o.trace_id IN (SELECT id FROM touched) AND o.usage IS NOT NULL
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
           COALESCE(agg.err_n, 0) AS err_n, COALESCE(agg.tokens, 0) AS tokens,
           COALESCE(agg.cost, 0) AS cost, buckets.usage AS usage, t.incomplete AS incomplete
    FROM traces t JOIN touched ON t.id = touched.id
    LEFT JOIN agg ON agg.trace_id = t.id LEFT JOIN buckets ON buckets.trace_id = t.id
)
UPDATE traces SET
    start_ns = calc.start_ns,
    end_ns = calc.end_ns,
    latency_ms = MAX(calc.end_ns - calc.start_ns, 0) / 1e6,
    observation_count = calc.n,
    open_count = calc.open_n,
    error_count = calc.err_n,
    total_tokens = calc.tokens,
    total_cost = calc.cost,
    usage = calc.usage,
    status = CASE WHEN calc.incomplete THEN 'incomplete' WHEN calc.open_n > 0 THEN 'running'
                  WHEN calc.err_n > 0 THEN 'error' ELSE 'ok' END
FROM calc WHERE traces.id = calc.id
"""


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
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
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
                for statement in _split_statements(MIGRATIONS[number]):
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()

    # ------------------------------------------------------------------ writes

    def write(self, events: Sequence[Event]) -> None:
        if not events:
            return
        batch = self._rows.build(events)
        with self._transaction() as conn:
            self._apply(conn, batch)

    def _apply(self, conn: sqlite3.Connection, batch: RowBatch) -> None:
        if batch.trace_projects:
            conn.executemany(
                "INSERT INTO traces (id, project) VALUES (?, ?) ON CONFLICT(id) DO NOTHING",
                batch.trace_projects.items(),
            )
        if batch.traces:
            conn.executemany(_TRACE_UPSERT, batch.traces)
        if batch.observations:
            conn.executemany(_OBSERVATION_UPSERT, batch.observations)
        if batch.scores:
            conn.executemany(_SCORE_UPSERT, batch.scores)
        if batch.payloads:
            conn.executemany(
                "INSERT OR REPLACE INTO payloads (owner, field, data) VALUES (?, ?, ?)",
                batch.payloads,
            )
        if batch.price_later:
            self._price_stored(conn, batch.price_later)
        if batch.trace_projects:
            conn.execute(_RECOMPUTE, (json.dumps(list(batch.trace_projects)),))

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
            _score(r)
            for r in conn.execute(
                "SELECT * FROM scores WHERE trace_id = ? ORDER BY timestamp, id", (trace_id,)
            )
        ]
        trace = _trace_fields(row, payloads)
        return TraceDetail(
            **trace,
            scores=scores,
            observations=[_observation(r, payloads) for r in obs_rows],
        )

    def get_observation(self, observation_id: str) -> Observation | None:
        conn = self._conn()
        row = conn.execute("SELECT * FROM observations WHERE id = ?", (observation_id,)).fetchone()
        if row is None:
            return None
        return _observation(row, self._payloads(conn, [observation_id]))

    def list_traces(self, query: TraceQuery) -> Page[Trace]:
        conn = self._conn()
        where, params = _trace_filters(query)
        column = _SORT_COLUMNS[query.sort]
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
        traces = [Trace(**_trace_fields(r, payloads)) for r in page]
        cursor = encode_cursor([page[-1][column], page[-1]["id"]]) if more else None
        return Page[Trace](data=traces, next_cursor=cursor)

    def list_sessions(
        self, project: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page[SessionSummary]:
        where, params = ["session_id IS NOT NULL"], []
        if project is not None:
            where.append("project = ?")
            params.append(project)
        having, having_params = "", []
        if cursor:
            last_start, last_id = decode_cursor(cursor, 2)
            having = "HAVING (MAX(start_ns), session_id) < (?, ?)"
            having_params = [last_start, last_id]
        rows = (
            self._conn()
            .execute(
                f"SELECT session_id, MIN(project) AS project, COUNT(*) AS n, "
                f"json_group_array(DISTINCT user_id) AS users, MIN(start_ns) AS first_ns, "
                f"MAX(start_ns) AS last_start, MAX(end_ns) AS last_ns, "
                f"TOTAL(total_tokens) AS tokens, "
                f"TOTAL(total_cost) AS cost, SUM(error_count > 0) AS errors "
                f"FROM traces {_where(where)} GROUP BY session_id {having} "
                f"ORDER BY last_start DESC, session_id DESC LIMIT ?",
                [*params, *having_params, limit + 1],
            )
            .fetchall()
        )
        page = rows[:limit]
        next_cursor = (
            encode_cursor([page[-1]["last_start"], page[-1]["session_id"]])
            if len(rows) > limit
            else None
        )
        return Page[SessionSummary](data=[_session(r) for r in page], next_cursor=next_cursor)

    def get_session(self, session_id: str, project: str | None = None) -> SessionDetail | None:
        query = TraceQuery(
            session_id=session_id,
            project=project,
            sort=TraceSort.START_TIME,
            descending=False,
            limit=1000,
        )
        traces: list[Trace] = []
        while True:
            page = self.list_traces(query)
            traces.extend(page.data)
            if page.next_cursor is None:
                break
            query = query.model_copy(update={"cursor": page.next_cursor})
        if not traces:
            return None
        return SessionDetail(
            id=session_id,
            project=traces[0].project,
            trace_count=len(traces),
            user_ids=sorted({t.user_id for t in traces if t.user_id}),
            start_time=traces[0].start_time,
            end_time=max((t.end_time for t in traces if t.end_time), default=None),
            total_tokens=sum(t.total_tokens for t in traces),
            total_cost=sum(t.total_cost for t in traces),
            error_count=sum(1 for t in traces if t.error_count),
            traces=traces,
        )

    def list_users(
        self, project: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page[UserSummary]:
        where, params = ["user_id IS NOT NULL"], []
        if project is not None:
            where.append("project = ?")
            params.append(project)
        having, having_params = "", []
        if cursor:
            last_seen, last_id = decode_cursor(cursor, 2)
            having = "HAVING (MAX(start_ns), user_id) < (?, ?)"
            having_params = [last_seen, last_id]
        rows = (
            self._conn()
            .execute(
                f"SELECT user_id, MIN(project) AS project, COUNT(*) AS n, "
                f"COUNT(DISTINCT session_id) AS sessions, MIN(start_ns) AS first_ns, "
                f"MAX(start_ns) AS last_start, TOTAL(total_tokens) AS tokens, "
                f"TOTAL(total_cost) AS cost, SUM(error_count > 0) AS errors "
                f"FROM traces {_where(where)} GROUP BY user_id {having} "
                f"ORDER BY last_start DESC, user_id DESC LIMIT ?",
                [*params, *having_params, limit + 1],
            )
            .fetchall()
        )
        page = rows[:limit]
        next_cursor = (
            encode_cursor([page[-1]["last_start"], page[-1]["user_id"]])
            if len(rows) > limit
            else None
        )
        users = [
            UserSummary(
                id=r["user_id"],
                project=r["project"],
                trace_count=r["n"],
                session_count=r["sessions"],
                first_seen=ns_to_datetime(r["first_ns"]),
                last_seen=ns_to_datetime(r["last_start"]),
                total_tokens=r["tokens"],
                total_cost=r["cost"],
                error_count=r["errors"] or 0,
            )
            for r in page
        ]
        return Page[UserSummary](data=users, next_cursor=next_cursor)

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
        return Page[Score](data=[_score(r) for r in page], next_cursor=next_cursor)

    def _payloads(self, conn: sqlite3.Connection, owners: list[str]) -> dict[tuple[str, str], str]:
        if not owners:
            return {}
        rows = conn.execute(
            "SELECT owner, field, data FROM payloads WHERE owner IN "
            "(SELECT value FROM json_each(?))",
            (json.dumps(owners),),
        ).fetchall()
        return {(r["owner"], r["field"]): decompress(r["data"]) for r in rows}

    # ------------------------------------------------------------------ deletes and sizes

    def delete_traces(self, trace_ids: Sequence[str]) -> int:
        if not trace_ids:
            return 0
        ids = json.dumps(list(trace_ids))
        with self._transaction() as conn:
            conn.execute(
                "DELETE FROM payloads WHERE owner IN (SELECT id FROM observations WHERE trace_id"
                " IN (SELECT value FROM json_each(?1)))"
                " OR owner IN (SELECT value FROM json_each(?1))",
                (ids,),
            )
            conn.execute(
                "DELETE FROM observations WHERE trace_id IN (SELECT value FROM json_each(?))",
                (ids,),
            )
            conn.execute(
                "DELETE FROM scores WHERE trace_id IN (SELECT value FROM json_each(?))", (ids,)
            )
            deleted = conn.execute(
                "DELETE FROM traces WHERE id IN (SELECT value FROM json_each(?))", (ids,)
            ).rowcount
        return int(deleted)

    def delete_where(self, query: TraceQuery) -> int:
        where, params = _trace_filters(query)
        total = 0
        while True:
            ids = [
                r[0]
                for r in self._conn().execute(
                    f"SELECT id FROM traces t {_where(where)} LIMIT 1000", params
                )
            ]
            if not ids:
                return total
            total += self.delete_traces(ids)

    def counts(self) -> StoreCounts:
        conn = self._conn()
        traces = conn.execute("SELECT COUNT(*) FROM traces").fetchone()[0]
        observations = conn.execute("SELECT COUNT(*) FROM observations").fetchone()[0]
        scores = conn.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
        size = sum(
            p.stat().st_size for p in self.path.parent.glob(self.path.name + "*") if p.is_file()
        )
        return StoreCounts(
            backend=self.backend,
            traces=traces,
            observations=observations,
            scores=scores,
            size_bytes=size,
            location=str(self.path),
        )


# ---------------------------------------------------------------------- query building


def _where(clauses: list[str]) -> str:
    return f"WHERE {' AND '.join(clauses)}" if clauses else ""


def _trace_filters(q: TraceQuery) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []

    def add(clause: str, *values: Any) -> None:
        where.append(clause)
        params.extend(values)

    if q.project is not None:
        add("t.project = ?", q.project)
    if q.name:
        add("t.name LIKE ? ESCAPE '\\'", f"%{_like(q.name)}%")
    if q.user_id is not None:
        add("t.user_id = ?", q.user_id)
    if q.session_id is not None:
        add("t.session_id = ?", q.session_id)
    for tag in q.tags:
        add("EXISTS (SELECT 1 FROM json_each(t.tags) WHERE value = ?)", tag)
    if q.status is not None:
        add("t.status = ?", q.status.value)
    if q.level is Level.ERROR:
        add("t.error_count > 0")
    elif q.level is not None:
        add(
            "EXISTS (SELECT 1 FROM observations o WHERE o.trace_id = t.id AND o.level = ?)",
            q.level.value,
        )
    if q.start_after is not None:
        add("t.start_ns >= ?", int(q.start_after.timestamp() * 1e9))
    if q.start_before is not None:
        add("t.start_ns < ?", int(q.start_before.timestamp() * 1e9))
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
    for key, value in q.metadata.items():
        add("CAST(json_extract(t.metadata, ?) AS TEXT) = ?", _json_path(key), value)
    if q.text:
        pattern = f"%{_like(q.text)}%"
        add(
            "(t.name LIKE ?1 ESCAPE '\\' OR t.input LIKE ?1 ESCAPE '\\' "
            "OR t.output LIKE ?1 ESCAPE '\\')".replace("?1", "?"),
            pattern,
            pattern,
            pattern,
        )
    return where, params


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _json_path(key: str) -> str:
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _split_statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


# ---------------------------------------------------------------------- row → model


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _payload(row: sqlite3.Row, payloads: dict[tuple[str, str], str], column: str, name: str) -> Any:
    if row[f"{column}_ref"]:
        text = payloads.get((row["id"], name))
        return None if text is None else json.loads(text)
    return _loads(row[column])


def _trace_fields(row: sqlite3.Row, payloads: dict[tuple[str, str], str]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "project": row["project"],
        "name": row["name"],
        "user_id": row["user_id"],
        "session_id": row["session_id"],
        "tags": _loads(row["tags"]) or [],
        "metadata": _loads(row["metadata"]) or {},
        "release": row["release"],
        "version": row["version"],
        "environment": row["environment"],
        "input": _payload(row, payloads, "input", "trace.input"),
        "output": _payload(row, payloads, "output", "trace.output"),
        "start_time": ns_to_datetime(row["start_ns"]) if row["start_ns"] else None,
        "end_time": ns_to_datetime(row["end_ns"]) if row["end_ns"] else None,
        "status": TraceStatus(row["status"]),
        "latency_ms": row["latency_ms"],
        "observation_count": row["observation_count"],
        "error_count": row["error_count"],
        "usage": _loads(row["usage"]) or {},
        "total_tokens": row["total_tokens"],
        "total_cost": row["total_cost"],
    }


def _observation(row: sqlite3.Row, payloads: dict[tuple[str, str], str]) -> Observation:
    start, end, first = row["start_time"], row["end_time"], row["completion_start_time"]
    return Observation(
        id=row["id"],
        trace_id=row["trace_id"],
        parent_id=row["parent_id"],
        type=ObservationType(row["type"] or "span"),
        name=row["name"],
        start_time=ns_to_datetime(start),
        end_time=ns_to_datetime(end),
        level=Level(row["level"] or "DEFAULT"),
        status_message=row["status_message"],
        input=_payload(row, payloads, "input", "input"),
        output=_payload(row, payloads, "output", "output"),
        metadata=_loads(row["metadata"]) or {},
        model=row["model"],
        model_parameters=_loads(row["model_parameters"]),
        usage=_loads(row["usage"]) or {},
        cost=_loads(row["cost"]) or {},
        completion_start_time=ns_to_datetime(first),
        prompt_name=row["prompt_name"],
        prompt_version=row["prompt_version"],
        latency_ms=(end - start) / 1e6 if start is not None and end is not None else None,
        time_to_first_token_ms=(
            (first - start) / 1e6 if start is not None and first is not None else None
        ),
    )


def _score(row: sqlite3.Row) -> Score:
    return Score(
        id=row["id"],
        trace_id=row["trace_id"],
        observation_id=row["observation_id"],
        session_id=row["session_id"],
        project=row["project"],
        name=row["name"],
        value=row["value"],
        string_value=row["string_value"],
        data_type=row["data_type"],
        source=row["source"],
        comment=row["comment"],
        metadata=_loads(row["metadata"]) or {},
        timestamp=ns_to_datetime(row["timestamp"]),
    )


def _session(row: sqlite3.Row) -> SessionSummary:
    return SessionSummary(
        id=row["session_id"],
        project=row["project"],
        trace_count=row["n"],
        user_ids=sorted(u for u in json.loads(row["users"]) if u),
        start_time=ns_to_datetime(row["first_ns"]),
        end_time=ns_to_datetime(row["last_ns"]),
        total_tokens=row["tokens"],
        total_cost=row["cost"],
        error_count=row["errors"] or 0,
    )

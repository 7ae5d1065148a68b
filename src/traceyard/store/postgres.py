"""The PostgreSQL store: one shared database for many app processes, replicas and servers.

Same contract and same merge semantics as the SQLite store (both build their rows with
:mod:`._rows` and read them back with :mod:`._convert`), so a trace looks the same whichever
store holds it. What is particular here:

* **Write path** — each batch is COPYed (binary) into temporary staging tables and merged with
  one ``INSERT ... SELECT ... ON CONFLICT DO UPDATE`` per table. That measured fastest
  (bench/postgres_write.py prints the comparison with pipelined ``executemany`` and multi-row
  ``VALUES``). Rows are merged in id order, so concurrent writers lock rows in the same order.
* **Idempotence** — every row is keyed by its id and merged, never appended: a batch retried
  after a lost connection changes nothing the second time.
* **Outages** — a refused, dropped or timed-out connection surfaces as
  :class:`StoreUnavailableError`; the pipeline's writer keeps the batch and retries with
  backoff, and the next attempt reconnects by itself.
* **Migrations** — versioned (:mod:`.postgres_schema`), applied on open inside one transaction
  holding ``pg_advisory_xact_lock``, so instances starting together migrate once. If the
  server is down at open, the store opens anyway and migrates on first use.
* **Counts** — per-writer counter shards updated in the write transaction (no table scans).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from traceyard.errors import MissingExtraError, StoreClosedError, StoreError, StoreUnavailableError

try:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict
    from psycopg.rows import dict_row, tuple_row
    from psycopg.types.string import TextLoader
    from psycopg_pool import ConnectionPool
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise MissingExtraError("PostgreSQL storage", "postgres") from exc

from traceyard._internal.serialize import dumps
from traceyard.cost.pricing import PriceTable
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
from traceyard.store.postgres_schema import (
    COUNTER_SHARDS,
    LATENCY_BIN,
    MIGRATIONS,
    SCHEMA_VERSION,
)

logger = logging.getLogger("traceyard")

#: Seconds to wait for a connection: long enough for a busy pool, short enough that an API
#: call during an outage answers instead of hanging.
_CONNECT_TIMEOUT_S = 5
_POOL_TIMEOUT_S = 5.0
_DELETE_CHUNK = 1000

# Column types. JSON columns are staged as text and cast on merge (binary COPY has no dumper
# from a Python str to jsonb's binary format).
_JSONB = frozenset({"tags", "metadata", "usage", "cost", "model_parameters"})
_INT8 = frozenset({"start_time", "end_time", "completion_start_time", "timestamp"})
_INT2 = frozenset({"input_ref", "output_ref", "incomplete"})
_FLOAT8 = frozenset({"total_tokens", "total_cost", "value"})


def _stage_type(column: str) -> str:
    if column in _INT8:
        return "int8"
    if column in _INT2:
        return "int2"
    if column in _FLOAT8:
        return "float8"
    if column == "prompt_version":
        return "int4"
    return "text"


def _select_expr(column: str) -> str:
    """A staged column as the table's type (``s.tags`` → ``s.tags::jsonb``)."""
    return f"{column}::jsonb" if column.rpartition(".")[2] in _JSONB else column


def _set_clause(table: str, columns: Sequence[str], merge: dict[str, str]) -> str:
    """ON CONFLICT's SET list: a NULL in the new row keeps the old value, except where
    ``merge`` says otherwise (the same rules as the SQLite store's upserts)."""
    sets = []
    for col in columns:
        if col in ("id", "trace_id", "project"):
            continue
        sets.append(f"{col} = {merge.get(col, f'COALESCE(EXCLUDED.{col}, {table}.{col})')}")
    return ", ".join(sets)


def _payload_merge(table: str, name: str) -> dict[str, str]:
    given = f"(EXCLUDED.{name} IS NOT NULL OR EXCLUDED.{name}_ref IS NOT NULL)"
    return {
        name: f"CASE WHEN {given} THEN EXCLUDED.{name} ELSE {table}.{name} END",
        f"{name}_ref": f"CASE WHEN {given} THEN EXCLUDED.{name}_ref ELSE {table}.{name}_ref END",
    }


def _metadata_merge(table: str) -> dict[str, str]:
    # jsonb || merges objects one level deep, the newer value winning: model.merge_fields.
    return {
        "metadata": f"CASE WHEN EXCLUDED.metadata IS NULL THEN {table}.metadata "
        f"WHEN {table}.metadata IS NULL THEN EXCLUDED.metadata "
        f"ELSE {table}.metadata || EXCLUDED.metadata END"
    }


MERGES: dict[str, dict[str, str]] = {
    "traces": {
        **_payload_merge("traces", "input"),
        **_payload_merge("traces", "output"),
        **_metadata_merge("traces"),
        # union in first-seen order: the old tags, then the new ones not already there
        "tags": "CASE WHEN EXCLUDED.tags IS NULL THEN traces.tags "
        "WHEN traces.tags IS NULL THEN EXCLUDED.tags "
        "ELSE traces.tags || COALESCE((SELECT jsonb_agg(x.e ORDER BY x.i) "
        "FROM jsonb_array_elements(EXCLUDED.tags) WITH ORDINALITY AS x(e, i) "
        "WHERE NOT traces.tags @> jsonb_build_array(x.e)), '[]'::jsonb) END",
        "incomplete": "GREATEST(COALESCE(traces.incomplete, 0), COALESCE(EXCLUDED.incomplete, 0))",
    },
    "observations": {
        **_payload_merge("observations", "input"),
        **_payload_merge("observations", "output"),
        **_metadata_merge("observations"),
        # A cost the client sent is never replaced by one we computed.
        "cost": "CASE WHEN observations.cost_source = 'client' AND EXCLUDED.cost_source "
        "IS DISTINCT FROM 'client' THEN observations.cost "
        "ELSE COALESCE(EXCLUDED.cost, observations.cost) END",
        "total_cost": "CASE WHEN observations.cost_source = 'client' AND EXCLUDED.cost_source "
        "IS DISTINCT FROM 'client' THEN observations.total_cost "
        "ELSE COALESCE(EXCLUDED.total_cost, observations.total_cost) END",
        "cost_source": "CASE WHEN observations.cost_source = 'client' THEN 'client' "
        "ELSE COALESCE(EXCLUDED.cost_source, observations.cost_source) END",
    },
    "scores": _metadata_merge("scores"),
}

COLUMNS: dict[str, tuple[str, ...]] = {
    "traces": TRACE_COLUMNS,
    "observations": OBSERVATION_COLUMNS,
    "scores": SCORE_COLUMNS,
}


def upsert_tail(table: str) -> str:
    """``ON CONFLICT (id) DO UPDATE SET ...`` of ``table``, shared with the write bench."""
    return f"ON CONFLICT (id) DO UPDATE SET {_set_clause(table, COLUMNS[table], MERGES[table])}"


def _merge_from_stage(table: str) -> str:
    columns = COLUMNS[table]
    # (xmax = 0) is true for rows this statement inserted, false for rows it updated: the
    # inserted count feeds the counters without a second look at the table.
    return (
        f"WITH merged AS (INSERT INTO {table} ({', '.join(columns)}) "
        f"SELECT {', '.join(_select_expr(c) for c in columns)} FROM _ty_stage_{table} "
        f"ORDER BY id {upsert_tail(table)} RETURNING (xmax = 0) AS inserted) "
        f"SELECT COUNT(*) FILTER (WHERE inserted) FROM merged"
    )


_STAGES = {
    **{
        table: (
            f"CREATE TEMP TABLE IF NOT EXISTS _ty_stage_{table} "
            f"({', '.join(f'{c} {_stage_type(c)}' for c in columns)}) ON COMMIT DELETE ROWS"
        )
        for table, columns in COLUMNS.items()
    },
    "payloads": "CREATE TEMP TABLE IF NOT EXISTS _ty_stage_payloads "
    "(owner text, field text, data bytea) ON COMMIT DELETE ROWS",
    # the touched traces' share of the hourly rollup before the merge, negated
    "hours": "CREATE TEMP TABLE IF NOT EXISTS _ty_stage_hours (hour int8, latency_bin int4, "
    "project text, traces int8, observations int8, errors int8, tokens float8, cost float8) "
    "ON COMMIT DELETE ROWS",
}
_STAGE_TYPES = {
    **{table: [_stage_type(c) for c in columns] for table, columns in COLUMNS.items()},
    "payloads": ["text", "text", "bytea"],
}
_MERGE_SQL = {table: _merge_from_stage(table) for table in ("observations", "scores")}
_COPY_SQL = {
    table: f"COPY _ty_stage_{table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
    for table, columns in {**COLUMNS, "payloads": ("owner", "field", "data")}.items()
}

_MERGE_PAYLOADS = """
INSERT INTO payloads (owner, field, data) SELECT owner, field, data FROM _ty_stage_payloads
ORDER BY owner, field ON CONFLICT (owner, field) DO UPDATE SET data = EXCLUDED.data
"""


def _merge_traces_sql() -> str:
    """Every trace the batch touched, in ONE upsert: its own fields merged and its derived
    columns recomputed from all its observations (merged earlier in the same transaction).

    One statement, one new row version per trace per batch: the traces table has eight
    indexes, and inserting the id, merging the fields and recomputing the totals as three
    statements cost three versions (and 24 index entries) per trace.

    The inserted row carries the derived values computed from this batch's trace fields; on
    conflict they are recomputed against the merged fields. ``EXCLUDED.start_ns`` is the
    earliest of the batch's trace start and the observations' first start, so the merged
    start is that, or the stored trace start when the batch did not set one (likewise ends).
    """
    own = [c for c in TRACE_COLUMNS if c not in ("id", "project")]
    start = (
        "COALESCE(LEAST(NULLIF(EXCLUDED.start_ns, 0), "
        "CASE WHEN EXCLUDED.start_time IS NULL THEN traces.start_time END), 0)"
    )
    end = (
        "COALESCE(GREATEST(NULLIF(EXCLUDED.end_ns, 0), "
        "CASE WHEN EXCLUDED.end_time IS NULL THEN traces.end_time END), 0)"
    )
    derived_on_conflict = {
        "start_ns": start,
        "end_ns": end,
        "latency_ms": f"CASE WHEN {start} > 0 AND {end} > 0 "
        f"THEN GREATEST({end} - {start}, 0) / 1e6 ELSE 0 END",
        "status": "CASE WHEN GREATEST(COALESCE(traces.incomplete, 0), "
        "COALESCE(EXCLUDED.incomplete, 0)) > 0 THEN 'incomplete' "
        "WHEN EXCLUDED.open_count > 0 THEN 'running' "
        "WHEN EXCLUDED.error_count > 0 THEN 'error' ELSE 'ok' END",
        **{
            c: f"EXCLUDED.{c}"
            for c in (
                "observation_count",
                "open_count",
                "error_count",
                "warning_count",
                "debug_count",
                "default_count",
                "usage",
                "total_tokens",
                "total_cost",
            )
        },
    }
    derived_on_conflict["latency_bin"] = (
        f"CASE WHEN ({derived_on_conflict['status']}) = 'running' THEN -1 "
        f"ELSE {LATENCY_BIN.format(derived_on_conflict['latency_ms'])} END"
    )
    sets = _set_clause("traces", TRACE_COLUMNS, MERGES["traces"])
    sets += ", " + ", ".join(f"{c} = {expr}" for c, expr in derived_on_conflict.items())
    columns = [*TRACE_COLUMNS, *derived_on_conflict]
    return f"""
WITH touched AS (
    SELECT u.id, u.project FROM unnest(%(ids)s::text[], %(projects)s::text[]) AS u(id, project)
),
agg AS (
    SELECT o.trace_id,
           MIN(o.start_time) AS first_ns,
           MAX(COALESCE(o.end_time, o.start_time)) AS last_ns,
           COUNT(*) AS n,
           COUNT(*) FILTER (WHERE o.end_time IS NULL) AS open_n,
           COUNT(*) FILTER (WHERE o.level = 'ERROR') AS err_n,
           COUNT(*) FILTER (WHERE o.level = 'WARNING') AS warning_n,
           COUNT(*) FILTER (WHERE o.level = 'DEBUG') AS debug_n,
           COUNT(*) FILTER (WHERE o.level IS NULL OR o.level = 'DEFAULT') AS default_n,
           COALESCE(SUM(o.total_tokens), 0) AS tokens,
           COALESCE(SUM(o.total_cost), 0) AS cost
    FROM observations o WHERE o.trace_id = ANY(%(ids)s) GROUP BY o.trace_id
),
buckets AS (
    SELECT b.trace_id, jsonb_object_agg(b.key, b.v) AS usage FROM (
        SELECT o.trace_id, j.key, SUM(j.value::float8) AS v
        FROM observations o
        CROSS JOIN LATERAL jsonb_each(
            CASE WHEN jsonb_typeof(o.usage) = 'object' THEN o.usage ELSE '{{}}'::jsonb END
        ) AS j
        WHERE o.trace_id = ANY(%(ids)s) AND jsonb_typeof(j.value) = 'number'
        GROUP BY o.trace_id, j.key
    ) b GROUP BY b.trace_id
),
src AS (
    SELECT t.id, t.project, {", ".join(f"{_select_expr(f's.{c}')} AS {c}" for c in own)},
           COALESCE(LEAST(s.start_time, agg.first_ns), 0) AS start_ns,
           COALESCE(GREATEST(s.end_time, agg.last_ns), 0) AS end_ns,
           COALESCE(agg.n, 0) AS n, COALESCE(agg.open_n, 0) AS open_n,
           COALESCE(agg.err_n, 0) AS err_n, COALESCE(agg.warning_n, 0) AS warning_n,
           COALESCE(agg.debug_n, 0) AS debug_n, COALESCE(agg.default_n, 0) AS default_n,
           COALESCE(agg.tokens, 0) AS tokens,
           COALESCE(agg.cost, 0) AS cost, buckets.usage AS usage_sum
    FROM touched t
    LEFT JOIN _ty_stage_traces s ON s.id = t.id
    LEFT JOIN agg ON agg.trace_id = t.id
    LEFT JOIN buckets ON buckets.trace_id = t.id
),
src_timed AS (
    SELECT src.*, CASE WHEN start_ns > 0 AND end_ns > 0
                       THEN GREATEST(end_ns - start_ns, 0) / 1e6 ELSE 0 END AS latency_ms
    FROM src
),
merged AS (
    INSERT INTO traces ({", ".join(columns)})
    SELECT id, project, {", ".join(own)}, start_ns, end_ns, latency_ms,
           CASE WHEN COALESCE(incomplete, 0) > 0 THEN 'incomplete' WHEN open_n > 0 THEN 'running'
                WHEN err_n > 0 THEN 'error' ELSE 'ok' END,
           n, open_n, err_n, warning_n, debug_n, default_n, usage_sum, tokens, cost,
           CASE WHEN COALESCE(incomplete, 0) = 0 AND open_n > 0 THEN -1
                ELSE {LATENCY_BIN.format("latency_ms")} END
    FROM src_timed ORDER BY id
    ON CONFLICT (id) DO UPDATE SET {sets}
    RETURNING (xmax = 0) AS inserted
)
SELECT COUNT(*) FILTER (WHERE inserted) FROM merged
"""


_MERGE_TRACES = _merge_traces_sql()


def _hour_sums(sign: str) -> str:
    """The rollup key and sums of a set of trace rows (``sign``: ``+`` or ``-``)."""
    return (
        f"start_ns / {HOUR_NS}, latency_bin, project, {sign}COUNT(*), "
        f"{sign}SUM(observation_count), {sign}SUM(error_count), {sign}SUM(total_tokens), "
        f"{sign}SUM(total_cost)"
    )


_HOURS_UPSERT = """
INSERT INTO trace_hours (hour, latency_bin, project, traces, observations, errors, tokens, cost)
{select} ORDER BY 1, 2, 3
ON CONFLICT (hour, latency_bin, project) DO UPDATE SET
    traces = trace_hours.traces + EXCLUDED.traces,
    observations = trace_hours.observations + EXCLUDED.observations,
    errors = trace_hours.errors + EXCLUDED.errors,
    tokens = trace_hours.tokens + EXCLUDED.tokens, cost = trace_hours.cost + EXCLUDED.cost
"""
# The hourly rollup follows the merge of the touched traces in two steps: their share before
# (locking their rows first, in id order like the merge), then after the merge the difference
# in ONE upsert in key order. Taking away and adding back as two upserts would lock the same
# rollup rows twice, and two writers doing that can deadlock.
_HOURS_BEFORE = f"""
WITH locked AS (
    SELECT start_ns, latency_bin, project, observation_count, error_count, total_tokens,
           total_cost
    FROM traces WHERE id = ANY(%(ids)s) ORDER BY id FOR UPDATE
)
INSERT INTO _ty_stage_hours SELECT {_hour_sums("-")} FROM locked GROUP BY 1, 2, 3
"""
_HOURS_AFTER = _HOURS_UPSERT.format(
    select=f"""SELECT hour, latency_bin, project, SUM(traces), SUM(observations), SUM(errors),
       SUM(tokens), SUM(cost)
FROM (SELECT * FROM _ty_stage_hours
      UNION ALL SELECT {_hour_sums("+")} FROM traces WHERE id = ANY(%(ids)s)
      GROUP BY 1, 2, 3) d
GROUP BY 1, 2, 3"""
)
# Deleting traces takes them out of the rollup with the rows DELETE returns (traces locked
# first, then rollup rows in key order, as the writer does).
_DELETE_TRACES = f"""
WITH gone AS (
    DELETE FROM traces WHERE id = ANY(%(ids)s)
    RETURNING start_ns, latency_bin, project, observation_count, error_count, total_tokens,
              total_cost
),
rolled AS ({_HOURS_UPSERT.format(select=f"SELECT {_hour_sums('-')} FROM gone GROUP BY 1, 2, 3")}
    RETURNING hour)
SELECT (SELECT COUNT(*) FROM gone) AS deleted, ARRAY(SELECT DISTINCT hour FROM rolled) AS hours
"""
# After a delete: the rollup rows of those hours left empty.
_HOURS_EMPTIED = """
DELETE FROM trace_hours WHERE traces = 0 AND hour = ANY(%(hours)s)
"""


_COUNT = """
INSERT INTO counters (shard, traces, observations, scores) VALUES (%s, %s, %s, %s)
ON CONFLICT (shard) DO UPDATE SET traces = counters.traces + EXCLUDED.traces,
    observations = counters.observations + EXCLUDED.observations,
    scores = counters.scores + EXCLUDED.scores
"""

_SESSION_COLUMNS = (
    "session_id, MIN(project) AS project, COUNT(*) AS n, "
    "array_agg(DISTINCT user_id) AS users, MIN(start_ns) AS first_ns, "
    "MAX(start_ns) AS last_start, MAX(end_ns) AS last_ns, SUM(total_tokens) AS tokens, "
    "SUM(total_cost) AS cost, COUNT(*) FILTER (WHERE error_count > 0) AS errors"
)
_USER_COLUMNS = (
    "user_id, MIN(project) AS project, COUNT(*) AS n, "
    "COUNT(DISTINCT session_id) AS sessions, MIN(start_ns) AS first_ns, "
    "MAX(start_ns) AS last_start, SUM(total_tokens) AS tokens, "
    "SUM(total_cost) AS cost, COUNT(*) FILTER (WHERE error_count > 0) AS errors"
)

_TABLES = (
    "traces",
    "observations",
    "scores",
    "payloads",
    "counters",
    "prompts",
    "media",
    "trace_hours",
)

# Nearest-rank percentiles (percentile_disc) over finished traces, as on SQLite and memory.
_TIMESERIES = """
SELECT (t.start_ns - %(start)s) / %(interval)s AS b, {group} AS g,
       COUNT(*) AS traces, COALESCE(SUM(t.observation_count), 0)::int8 AS observations,
       COALESCE(SUM(t.error_count), 0)::int8 AS errors,
       COALESCE(SUM(t.total_tokens), 0) AS tokens, COALESCE(SUM(t.total_cost), 0) AS cost,
       percentile_disc(0.5) WITHIN GROUP (ORDER BY t.latency_ms)
           FILTER (WHERE t.status <> 'running') AS p50,
       percentile_disc(0.95) WITHIN GROUP (ORDER BY t.latency_ms)
           FILTER (WHERE t.status <> 'running') AS p95
FROM traces t
WHERE t.start_ns >= %(start)s AND t.start_ns < %(end)s {project}
GROUP BY 1, 2 ORDER BY 1, 2 NULLS FIRST
"""

_TIMESERIES_BY_MODEL = """
SELECT (t.start_ns - %(start)s) / %(interval)s AS b, o.model AS g,
       COUNT(DISTINCT t.id) AS traces, COUNT(*) AS observations,
       COUNT(*) FILTER (WHERE o.level = 'ERROR') AS errors,
       COALESCE(SUM(o.total_tokens), 0) AS tokens, COALESCE(SUM(o.total_cost), 0) AS cost,
       percentile_disc(0.5) WITHIN GROUP (
           ORDER BY (o.end_time - o.start_time) / 1000000.0::float8) AS p50,
       percentile_disc(0.95) WITHIN GROUP (
           ORDER BY (o.end_time - o.start_time) / 1000000.0::float8) AS p95
FROM traces t JOIN observations o ON o.trace_id = t.id
WHERE t.start_ns >= %(start)s AND t.start_ns < %(end)s AND o.model IS NOT NULL {project}
GROUP BY 1, 2 ORDER BY 1, 2
"""

#: \\u0000 in JSON text (not preceded by an escaping backslash): jsonb refuses it.
_JSON_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


class PostgresStore:
    """A :class:`~traceyard.store.base.Store` in a PostgreSQL database (psycopg 3)."""

    backend = "postgres"

    def __init__(
        self,
        url: str,
        *,
        blob_threshold_bytes: int = 8192,
        prices: PriceTable | None = None,
        pool_size: int = 4,
    ) -> None:
        self.url = url.replace("postgresql+psycopg://", "postgresql://", 1)
        try:
            params = conninfo_to_dict(self.url)
        except psycopg.ProgrammingError as exc:
            raise StoreError(f"database_url is not a valid PostgreSQL URL: {exc}") from None
        self._rows = RowBuilder(blob_threshold_bytes, prices or PriceTable.default())
        self._location = _describe(params)
        self._closed = False
        self._ready = False
        self._ready_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._writer_conn: psycopg.Connection[Any] | None = None
        self._shard = 0
        self._pool: ConnectionPool[Any] = ConnectionPool(
            self.url,
            min_size=1,
            max_size=pool_size,
            open=False,
            kwargs={
                "autocommit": True,
                "row_factory": dict_row,
                "connect_timeout": _CONNECT_TIMEOUT_S,
            },
            configure=_configure,
            check=ConnectionPool.check_connection,
            name="traceyard",
        )
        self._pool.open(wait=False)
        try:
            self._ensure_ready()
        except StoreUnavailableError as exc:
            logger.warning("traceyard: %s; writes wait and retry until it is back", exc)
        except BaseException:
            self._pool.close()
            raise

    # ------------------------------------------------------------------ connections

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError("the PostgreSQL store has been closed")

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled autocommit connection (dict rows, jsonb as text)."""
        self._check_open()
        self._ensure_ready()
        with _unavailable(self._location), self._pool.connection(timeout=_POOL_TIMEOUT_S) as conn:
            yield conn

    def _ensure_ready(self) -> None:
        if self._ready:
            return
        with self._ready_lock:
            if self._ready:
                return
            # A connection of its own rather than the pool's: a refused connection fails at
            # once instead of waiting out the pool timeout.
            with _unavailable(self._location), self._connect() as conn:
                migrate(conn)
            self._ready = True

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(
            self.url, autocommit=True, row_factory=dict_row, connect_timeout=_CONNECT_TIMEOUT_S
        )
        _configure(conn)
        return conn

    def _writer(self) -> psycopg.Connection[Any]:
        """The writer's own connection, with its staging tables; reopened after a failure."""
        conn = self._writer_conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        if conn is not None:
            conn.close()
        self._writer_conn = None
        conn = self._connect()
        # The writer's commits do not wait for the WAL flush: durable against the app (or
        # this connection) dying, like SQLite's synchronous=NORMAL; a crash of the database
        # server itself can lose its last ~0.6 s of commits (never corrupt anything). It
        # takes the fsync off every batch, which is most of a batch's time on slow disks.
        conn.execute("SET synchronous_commit = off")
        for ddl in _STAGES.values():
            conn.execute(ddl)
        self._shard = conn.info.backend_pid % COUNTER_SHARDS
        self._writer_conn = conn
        return conn

    def close(self) -> None:
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            if self._writer_conn is not None:
                self._writer_conn.close()
                self._writer_conn = None
        self._pool.close()

    # ------------------------------------------------------------------ writes

    def write(self, events: Sequence[Event]) -> None:
        if events:
            self.commit(self.prepare(events))

    def prepare(self, events: Sequence[Event]) -> RowBatch:
        """The rows of a batch (merged, serialised, compressed, priced): no database work."""
        return self._rows.build(events)

    def commit(self, batch: RowBatch) -> None:
        """Write prepared rows in one transaction."""
        with self._write_lock:
            self._check_open()
            self._ensure_ready()
            with _unavailable(self._location):
                conn = self._writer()
                try:
                    with conn.transaction():
                        self._apply(conn, batch)
                except psycopg.DataError:
                    # NUL characters: text columns cannot hold them, jsonb refuses \u0000.
                    # Rare, so we only pay for cleaning a batch that failed.
                    _strip_nul(batch)
                    with conn.transaction():
                        self._apply(conn, batch)

    def _apply(self, conn: psycopg.Connection[Any], batch: RowBatch) -> None:
        touched = sorted(batch.trace_projects.items())
        created = {"traces": 0, "observations": 0, "scores": 0}
        with conn.cursor(row_factory=tuple_row) as cur:
            if batch.traces:
                _copy(cur, "traces", batch.traces)
            for table, rows in (("observations", batch.observations), ("scores", batch.scores)):
                if rows:
                    _copy(cur, table, rows)
                    cur.execute(_MERGE_SQL[table])
                    created[table] = _scalar(cur)
            if batch.payloads:
                _copy(cur, "payloads", batch.payloads)
                cur.execute(_MERGE_PAYLOADS)
            if batch.price_later:
                self._price_stored(cur, batch.price_later)
            if touched:
                ids = [t for t, _ in touched]
                cur.execute(_HOURS_BEFORE, {"ids": ids})
                cur.execute(_MERGE_TRACES, {"ids": ids, "projects": [p for _, p in touched]})
                created["traces"] = _scalar(cur)
                cur.execute(_HOURS_AFTER, {"ids": ids})
            if any(created.values()):
                cur.execute(
                    _COUNT,
                    (self._shard, created["traces"], created["observations"], created["scores"]),
                )

    def _price_stored(self, cur: psycopg.Cursor[Any], ids: list[str]) -> None:
        """Price observations whose model and usage arrived in different batches."""
        cur.execute(
            "SELECT id, model, usage::text FROM observations WHERE id = ANY(%s) "
            "AND model IS NOT NULL AND usage IS NOT NULL "
            "AND cost_source IS DISTINCT FROM 'client'",
            (ids,),
        )
        updates = []
        for obs_id, model, usage in cur.fetchall():
            cost = self._rows.prices.cost(model, convert.loads(usage))
            if cost:
                updates.append((obs_id, dumps(cost), cost_total(cost)))
        if updates:
            ids, costs, totals = (list(column) for column in zip(*updates, strict=True))
            cur.execute(
                "UPDATE observations o SET cost = u.cost::jsonb, total_cost = u.total, "
                "cost_source = 'auto' FROM unnest(%s::text[], %s::text[], %s::float8[]) "
                "AS u(id, cost, total) WHERE o.id = u.id",
                (ids, costs, totals),
            )

    # ------------------------------------------------------------------ reads

    def get_trace(self, trace_id: str) -> TraceDetail | None:
        with self._conn() as conn:
            row = conn.execute("SELECT * FROM traces WHERE id = %s", (trace_id,)).fetchone()
            if row is None:
                return None
            obs_rows = conn.execute(
                "SELECT * FROM observations WHERE trace_id = %s "
                "ORDER BY start_time NULLS FIRST, id",
                (trace_id,),
            ).fetchall()
            payloads = self._payloads(conn, [trace_id, *(r["id"] for r in obs_rows)])
            score_rows = conn.execute(
                "SELECT * FROM scores WHERE trace_id = %s ORDER BY timestamp NULLS FIRST, id",
                (trace_id,),
            ).fetchall()
        return TraceDetail(
            **convert.trace_fields(row, payloads),
            scores=[convert.score(r) for r in score_rows],
            observations=convert.observations(obs_rows, payloads),
        )

    def get_observation(self, observation_id: str) -> Observation | None:
        with self._conn() as conn:
            row = conn.execute(
                "SELECT * FROM observations WHERE id = %s", (observation_id,)
            ).fetchone()
            if row is None:
                return None
            return convert.observation(row, self._payloads(conn, [observation_id]))

    def list_traces(self, query: TraceQuery) -> Page[Trace]:
        where, params = _trace_filters(query)
        column = convert.SORT_COLUMNS[query.sort]
        direction = "DESC" if query.descending else "ASC"
        if query.cursor:
            value, last_id = decode_cursor(query.cursor, 2)
            op = "<" if query.descending else ">"
            where.append(f"(t.{column}, t.id) {op} (%s, %s)")
            params += [value, last_id]
        sql = (
            f"SELECT * FROM traces t {_where(where)} "
            f"ORDER BY t.{column} {direction}, t.id {direction} LIMIT %s"
        )
        with self._conn() as conn:
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
        sessions = [convert.session(r, r["users"]) for r in rows]
        return Page[SessionSummary](data=sessions, next_cursor=next_cursor)

    def get_session(self, session_id: str, project: str | None = None) -> SessionDetail | None:
        query = convert.session_query(session_id, project)
        traces: list[Trace] = []
        while True:
            page = self.list_traces(query)
            traces.extend(page.data)
            if page.next_cursor is None:
                return convert.session_detail(session_id, traces)
            query = query.model_copy(update={"cursor": page.next_cursor})

    def list_users(
        self, project: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page[UserSummary]:
        rows, next_cursor = self._group_page("user_id", _USER_COLUMNS, project, limit, cursor)
        return Page[UserSummary](data=[convert.user(r) for r in rows], next_cursor=next_cursor)

    def _group_page(
        self, key: str, columns: str, project: str | None, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of sessions or users (``key``), newest first; see :mod:`._groups`."""
        base: list[str] = [f"{key} IS NOT NULL"]
        params: list[Any] = []
        if project is not None:
            base.append("project = %s")
            params.append(project)
        after = tuple(decode_cursor(cursor, 2)) if cursor else None
        with self._conn() as conn:

            def walk(position: tuple[int, str] | None, n: int) -> list[Any]:
                where, values = list(base), list(params)
                if position is not None:
                    where.append("(start_ns, id) < (%s, %s)")
                    values += list(position)
                return conn.execute(
                    f"SELECT {key}, start_ns, id FROM traces {_where(where)} "
                    "ORDER BY start_ns DESC, id DESC LIMIT %s",
                    [*values, n],
                    prepare=False,
                ).fetchall()

            def aggregate(keys: list[str]) -> dict[str, dict[str, Any]]:
                where = [*base, f"{key} = ANY(%s)"]
                rows = conn.execute(
                    f"SELECT {columns} FROM traces {_where(where)} GROUP BY {key}",
                    [*params, keys],
                ).fetchall()
                return {r[key]: r for r in rows}

            def full_scan() -> list[Mapping[str, Any]]:
                having, values = "", list(params)
                if after is not None:
                    having = f"HAVING (MAX(start_ns), {key}) < (%s, %s)"
                    values += list(after)
                rows: list[Mapping[str, Any]] = conn.execute(
                    f"SELECT {columns} FROM traces {_where(base)} GROUP BY {key} {having} "
                    f"ORDER BY last_start DESC, {key} DESC LIMIT %s",
                    [*values, limit + 1],
                ).fetchall()
                return rows

            rows: list[Any] = recent_groups(
                lambda position, n: [tuple(r.values()) for r in walk(position, n)],
                aggregate,
                limit,
                after,
                full_scan,
            )
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
            where.append("trace_id = %s")
            params.append(trace_id)
        if name is not None:
            where.append("name = %s")
            params.append(name)
        if cursor:
            last_ts, last_id = decode_cursor(cursor, 2)
            where.append("(COALESCE(timestamp, 0), id) < (%s, %s)")
            params += [last_ts, last_id]
        sql = (
            f"SELECT * FROM scores {_where(where)} "
            "ORDER BY COALESCE(timestamp, 0) DESC, id DESC LIMIT %s"
        )
        with self._conn() as conn:
            rows = conn.execute(sql, [*params, limit + 1]).fetchall()
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
        far off the hour for it to help. Four round trips whatever the range."""
        plan = _hours.plan(
            datetime_to_ns(query.start), datetime_to_ns(query.end), query.interval_s * 10**9
        )
        if plan is None:
            return None
        project = "" if query.project is None else " AND project = %(project)s"
        t_project = project.replace("project", "t.project", 1)
        params = {"first": plan.hours[0], "last": plan.hours[1], "project": query.project}
        with self._conn() as conn, conn.cursor(row_factory=tuple_row) as cur:
            hour_sums = cur.execute(
                "SELECT hour, SUM(traces)::int8, SUM(observations)::int8, SUM(errors)::int8, "
                "SUM(tokens), SUM(cost) FROM trace_hours "
                f"WHERE hour >= %(first)s AND hour < %(last)s{project} GROUP BY hour",
                params,
            ).fetchall()
            hour_bins = cur.execute(
                "SELECT hour, latency_bin, SUM(traces)::int8 FROM trace_hours "
                f"WHERE hour >= %(first)s AND hour < %(last)s AND latency_bin >= 0{project} "
                "GROUP BY hour, latency_bin",
                params,
            ).fetchall()
            edges = cur.execute(
                "SELECT e.s, e.e, t.latency_bin, t.observation_count, t.error_count, "
                "t.total_tokens, t.total_cost FROM unnest(%(starts)s::int8[], %(ends)s::int8[]) "
                f"AS e(s, e) JOIN traces t ON t.start_ns >= e.s AND t.start_ns < e.e{t_project}",
                {
                    "starts": [start for _, start, _ in plan.edges],
                    "ends": [end for _, _, end in plan.edges],
                    "project": query.project,
                },
            ).fetchall()
            by_edge: dict[tuple[int, int], list[Any]] = {}
            for edge_start, edge_end, *row in edges:
                by_edge.setdefault((edge_start, edge_end), []).append(row)
            _hours.add_rows(plan, hour_sums, hour_bins, lambda s, e: by_edge.get((s, e), []))

            def latencies(picks: list[_hours.Pick]) -> list[float | None]:
                rows = cur.execute(
                    "SELECT x.latency_ms FROM unnest(%(bins)s::int4[], %(starts)s::int8[], "
                    "%(ends)s::int8[], %(offsets)s::int8[]) WITH ORDINALITY AS p(b, s, e, o, i) "
                    "LEFT JOIN LATERAL (SELECT t.latency_ms FROM traces t "
                    "WHERE t.latency_bin >= 0 AND t.latency_bin = p.b AND t.start_ns >= p.s "
                    f"AND t.start_ns < p.e{t_project} "
                    "ORDER BY t.latency_ms OFFSET p.o LIMIT 1) x ON true ORDER BY p.i",
                    {
                        "bins": [p[0] for p in picks],
                        "starts": [p[1] for p in picks],
                        "ends": [p[2] for p in picks],
                        "offsets": [p[3] - 1 for p in picks],
                        "project": query.project,
                    },
                ).fetchall()
                return [r[0] for r in rows]

            return _hours.points(plan.buckets, latencies)

    def _timeseries_from_traces(self, query: TimeseriesQuery) -> list[TimeseriesPoint]:
        start, interval = datetime_to_ns(query.start), query.interval_s * 1_000_000_000
        template = _TIMESERIES_BY_MODEL if query.group_by is TimeseriesGroup.MODEL else _TIMESERIES
        sql = template.format(
            group="t.name" if query.group_by is TimeseriesGroup.NAME else "NULL::text",
            project="AND t.project = %(project)s" if query.project is not None else "",
        )
        params = {
            "start": start,
            "end": datetime_to_ns(query.end),
            "interval": interval,
            "project": query.project,
        }
        with self._conn() as conn, conn.transaction():
            # A week of traces sorts in memory instead of spilling to disk (default 4 MB).
            conn.execute("SET LOCAL work_mem = '64MB'")
            rows = conn.execute(sql, params).fetchall()
        return [
            TimeseriesPoint(
                bucket_start=ns_to_datetime(start + int(r["b"]) * interval),
                group=r["g"],
                traces=r["traces"],
                observations=int(r["observations"]),
                errors=int(r["errors"]),
                latency_p50_ms=r["p50"],
                latency_p95_ms=r["p95"],
                total_tokens=r["tokens"],
                total_cost=r["cost"],
            )
            for r in rows
        ]

    def _payloads(
        self, conn: psycopg.Connection[Any], owners: list[str]
    ) -> dict[tuple[str, str], str]:
        if not owners:
            return {}
        rows = conn.execute(
            "SELECT owner, field, data FROM payloads WHERE owner = ANY(%s)", (owners,)
        ).fetchall()
        return {(r["owner"], r["field"]): decompress_text(r["data"]) for r in rows}

    # ------------------------------------------------------------------ deletes and sizes

    def delete_traces(self, trace_ids: Sequence[str]) -> int:
        ids = sorted(set(trace_ids))
        if not ids:
            return 0
        with self._conn() as conn, conn.transaction():
            conn.execute(
                "DELETE FROM payloads WHERE owner = ANY(%(ids)s) OR owner IN "
                "(SELECT id FROM observations WHERE trace_id = ANY(%(ids)s))",
                {"ids": ids},
            )
            conn.execute("DELETE FROM media WHERE trace_id = ANY(%s)", (ids,))
            counts = []
            for table, column in (("observations", "trace_id"), ("scores", "trace_id")):
                cur = conn.execute(f"DELETE FROM {table} WHERE {column} = ANY(%s)", (ids,))
                counts.append(cur.rowcount)
            row = conn.execute(_DELETE_TRACES, {"ids": ids}).fetchone()
            assert row is not None
            traces = int(row["deleted"])
            conn.execute(_HOURS_EMPTIED, {"hours": row["hours"]})
            if traces or any(counts):
                shard = conn.info.backend_pid % COUNTER_SHARDS
                conn.execute(_COUNT, (shard, -traces, -counts[0], -counts[1]))
        return traces

    def delete_where(self, query: TraceQuery) -> int:
        where, params = _trace_filters(query)
        return self._delete_selected(f"SELECT t.id FROM traces t {_where(where)}", params)

    def prune(self, max_traces: int | None = None, older_than: datetime | None = None) -> int:
        deleted = 0
        if older_than is not None:
            deleted += self._delete_selected(
                "SELECT id FROM traces WHERE start_ns < %s", [datetime_to_ns(older_than)]
            )
        if max_traces is not None:
            while True:
                with self._conn() as conn:
                    rows = conn.execute(
                        "SELECT id FROM traces ORDER BY start_ns DESC, id DESC LIMIT %s OFFSET %s",
                        (_DELETE_CHUNK, max_traces),
                    ).fetchall()
                if not rows:
                    break
                deleted += self.delete_traces([r["id"] for r in rows])
        if deleted:
            # Plain VACUUM: makes the space reusable at once and gives trailing pages back to
            # the OS, without VACUUM FULL's exclusive lock on a table the writer is using.
            with self._conn() as conn:
                conn.execute("VACUUM (ANALYZE) traces, observations, scores, payloads, media")
        return deleted

    def _delete_selected(self, select_ids: str, params: Sequence[Any]) -> int:
        total = 0
        while True:
            with self._conn() as conn:
                rows = conn.execute(f"{select_ids} LIMIT {_DELETE_CHUNK}", params).fetchall()
            if not rows:
                return total
            total += self.delete_traces([r["id"] for r in rows])

    def counts(self) -> StoreCounts:
        with self._conn() as conn:
            row = conn.execute(
                "SELECT COALESCE(SUM(traces), 0)::int8 AS traces, "
                "COALESCE(SUM(observations), 0)::int8 AS observations, "
                "COALESCE(SUM(scores), 0)::int8 AS scores FROM counters"
            ).fetchone()
            size = conn.execute(
                "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::int8 AS size "
                "FROM pg_class c WHERE c.relkind = 'r' AND c.relname = ANY(%s) "
                "AND c.relnamespace = (SELECT oid FROM pg_namespace "
                "WHERE nspname = current_schema())",
                (list(_TABLES),),
            ).fetchone()
        assert row is not None and size is not None
        return StoreCounts(
            backend=self.backend,
            traces=row["traces"],
            observations=row["observations"],
            scores=row["scores"],
            size_bytes=size["size"],
            location=self._location,
            extra={"schema_version": SCHEMA_VERSION},
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
        with self._conn() as conn, conn.transaction():
            existing = _lock_prompt(conn, project, name)
            version, own_labels, changes = plan_new_version(existing, labels)
            _relabel(conn, project, name, changes)
            row = conn.execute(
                "INSERT INTO prompts (project, name, version, type, prompt, config, labels, "
                "tags, commit_message, created_at) VALUES (%s, %s, %s, %s, %s::jsonb, "
                "%s::jsonb, %s::jsonb, %s::jsonb, %s, %s) RETURNING *",
                (
                    project,
                    name,
                    version,
                    type,
                    _jsonb_text(dumps(prompt)),
                    _jsonb_text(dumps(config or {})),
                    dumps(own_labels),
                    dumps(list(dict.fromkeys(tags))),
                    commit_message,
                    time.time_ns(),
                ),
            ).fetchone()
        assert row is not None
        return convert.prompt(row)

    def get_prompt(
        self, project: str, name: str, *, version: int | None = None, label: str | None = None
    ) -> Prompt | None:
        with self._conn() as conn:
            if version is not None:
                row = conn.execute(
                    "SELECT * FROM prompts WHERE project = %s AND name = %s AND version = %s",
                    (project, name, version),
                ).fetchone()
            else:
                row = conn.execute(
                    "SELECT * FROM prompts WHERE project = %s AND name = %s "
                    "AND labels @> jsonb_build_array(%s::text)",
                    (project, name, label or DEFAULT_LABEL),
                ).fetchone()
        return convert.prompt(row) if row is not None else None

    def list_prompts(self, project: str | None, name: str | None = None) -> list[Prompt]:
        where, params = prompt_where(project, name, "project", "name", "%s")
        with self._conn() as conn:
            rows = conn.execute(
                f"SELECT * FROM prompts {_where(where)} ORDER BY project, name, version", params
            ).fetchall()
        return [convert.prompt(r) for r in rows]

    def prompt_usage(
        self, project: str | None, name: str | None = None, *, limit: int = 1000
    ) -> list[PromptUsage]:
        where, params = prompt_where(project, name, "project", "name", "%s")
        usage = []
        with self._conn() as conn:
            saved = conn.execute(
                f"SELECT project, name, version FROM prompts {_where(where)}", params
            ).fetchall()
            keys = usage_keys([(r["project"], r["name"], r["version"]) for r in saved])
            for key in keys:
                versioned = key[2] is not None
                args = [*(key[1:] if versioned else key[1:2]), key[0], limit]
                row = conn.execute(prompt_usage_sql("%s", versioned), args).fetchone()
                assert row is not None  # an aggregate always has its row
                if row["observations"]:
                    usage.append(convert.prompt_usage(key, row, limit))
        return usage

    def set_prompt_labels(
        self, project: str, name: str, version: int, labels: Sequence[str]
    ) -> Prompt | None:
        with self._conn() as conn, conn.transaction():
            existing = _lock_prompt(conn, project, name)
            if version not in existing:
                return None
            _relabel(conn, project, name, plan_set_labels(existing, version, labels))
            row = conn.execute(
                "SELECT * FROM prompts WHERE project = %s AND name = %s AND version = %s",
                (project, name, version),
            ).fetchone()
        return convert.prompt(row) if row is not None else None

    def save_media(self, media: MediaRecord) -> None:
        columns = convert.MEDIA_COLUMNS
        sets = ", ".join(
            f"{c} = COALESCE(EXCLUDED.{c}, media.{c})"
            for c in columns
            if c not in ("id", "created_at")
        )
        with self._conn() as conn:
            conn.execute(
                f"INSERT INTO media ({', '.join(columns)}) "
                f"VALUES ({', '.join(['%s'] * len(columns))}) "
                f"ON CONFLICT (id) DO UPDATE SET {sets}",
                convert.media_row(media, time.time_ns()),
            )

    def get_media(self, media_id: str) -> MediaRecord | None:
        with self._conn() as conn:
            row = conn.execute("SELECT * FROM media WHERE id = %s", (media_id,)).fetchone()
        return convert.media(row) if row is not None else None


# ---------------------------------------------------------------------- migrations


def migrate(conn: psycopg.Connection[Any]) -> int:
    """Bring the schema on ``conn``'s search path up to date; returns the version it had.

    One transaction under an advisory lock keyed by the schema: several instances starting
    at once wait for the first to finish, then find nothing left to do.
    """
    with conn.transaction():
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext('traceyard.migrate:' || current_schema()))"
        )
        conn.execute("CREATE TABLE IF NOT EXISTS traceyard_schema (version integer NOT NULL)")
        row = conn.execute("SELECT version FROM traceyard_schema").fetchone()
        version = _first(row) if row is not None else 0
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the PostgreSQL schema has version {version}, newer than this traceyard "
                f"({SCHEMA_VERSION}); upgrade traceyard to use it"
            )
        for number in range(version, SCHEMA_VERSION):
            conn.execute(MIGRATIONS[number])
        if row is None:
            conn.execute("INSERT INTO traceyard_schema (version) VALUES (%s)", (SCHEMA_VERSION,))
        elif version != SCHEMA_VERSION:
            conn.execute("UPDATE traceyard_schema SET version = %s", (SCHEMA_VERSION,))
    return version


# ---------------------------------------------------------------------- helpers


def _configure(conn: psycopg.Connection[Any]) -> None:
    # jsonb comes back as its text, exactly like SQLite's JSON text columns, so one set of
    # row converters (_convert.py) serves both stores.
    conn.adapters.register_loader("jsonb", TextLoader)


@contextmanager
def _unavailable(location: str) -> Iterator[None]:
    """Connection trouble (refused, dropped, pool timeout, deadlock) → StoreUnavailableError,
    which the writer retries with backoff. Anything else is a real error and propagates."""
    try:
        yield
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        raise StoreUnavailableError(f"PostgreSQL at {location} is unavailable: {exc}") from exc


def _copy(cur: psycopg.Cursor[Any], table: str, rows: Sequence[Sequence[Any]]) -> None:
    with cur.copy(_COPY_SQL[table]) as copy:
        copy.set_types(_STAGE_TYPES[table])
        for row in rows:
            copy.write_row(row)


def _scalar(cur: psycopg.Cursor[Any]) -> int:
    row = cur.fetchone()
    return int(row[0]) if row is not None else 0


def _first(row: Any) -> int:
    return int(row["version"] if isinstance(row, dict) else row[0])


def _lock_prompt(conn: psycopg.Connection[Any], project: str, name: str) -> dict[int, list[str]]:
    """Serialise versioning of one prompt (numbering and label moves) across instances."""
    conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"traceyard.prompt:{project}/{name}",)
    )
    rows = conn.execute(
        "SELECT version, labels FROM prompts WHERE project = %s AND name = %s", (project, name)
    ).fetchall()
    return {r["version"]: convert.loads(r["labels"]) for r in rows}


def _relabel(
    conn: psycopg.Connection[Any], project: str, name: str, changes: dict[int, list[str]]
) -> None:
    for version, labels in changes.items():
        conn.execute(
            "UPDATE prompts SET labels = %s::jsonb WHERE project = %s AND name = %s "
            "AND version = %s",
            (dumps(labels), project, name, version),
        )


def _where(clauses: list[str]) -> str:
    return f"WHERE {' AND '.join(clauses)}" if clauses else ""


def _trace_filters(q: TraceQuery) -> tuple[list[str], list[Any]]:
    """WHERE clauses of a listing; the same semantics as the SQLite store's filters."""
    where: list[str] = []
    params: list[Any] = []

    def add(clause: str, *values: Any) -> None:
        where.append(clause)
        params.extend(values)

    if q.project is not None:
        add("t.project = %s", q.project)
    if q.name:
        add("t.name ILIKE %s", f"%{like_escape(q.name)}%")
    if q.user_id is not None:
        add("t.user_id = %s", q.user_id)
    if q.session_id is not None:
        add("t.session_id = %s", q.session_id)
    if q.tags:
        add("t.tags @> %s::jsonb", dumps(list(q.tags)))
    if q.status is not None:
        add("t.status = %s", q.status.value)
    if q.level is not None:
        add(level_filter(q.level))
    if q.start_after is not None:
        add("t.start_ns >= %s", datetime_to_ns(q.start_after))
    if q.start_before is not None:
        add("t.start_ns < %s", datetime_to_ns(q.start_before))
    if q.min_latency_ms is not None:
        add("t.latency_ms >= %s", q.min_latency_ms)
    if q.max_latency_ms is not None:
        add("t.latency_ms <= %s", q.max_latency_ms)
    if q.min_cost is not None:
        add("t.total_cost >= %s", q.min_cost)
    if q.model is not None:
        add(
            "EXISTS (SELECT 1 FROM observations o WHERE o.model = %s AND o.trace_id = t.id)",
            q.model,
        )
    if q.prompt_name is not None:
        # PostgreSQL's planner chooses between probing and a semi-join from its statistics.
        clause, values = prompt_match(q.prompt_name, q.prompt_version, "%s")
        add(f"EXISTS (SELECT 1 FROM observations o WHERE {clause} AND o.trace_id = t.id)", *values)
    for key, value in q.metadata.items():
        add("(t.metadata ->> %s) = %s", key, value)
    if q.text:
        pattern = f"%{like_escape(q.text)}%"
        add("(t.name ILIKE %s OR t.input ILIKE %s OR t.output ILIKE %s)", pattern, pattern, pattern)
    return where, params


def _jsonb_text(text: str) -> str:
    return _JSON_NUL.sub(r"\1\\ufffd", text) if "\\u0000" in text else text


def _strip_nul(batch: RowBatch) -> None:
    """Replace what PostgreSQL cannot store: U+0000 in any text, and its \u0000 escape in
    jsonb columns (JSON text columns, inputs and outputs, keep the escape)."""

    def cleaner(table: str) -> Any:
        jsonb = {i for i, c in enumerate(COLUMNS[table]) if c in _JSONB}

        def clean(row: tuple[Any, ...]) -> tuple[Any, ...]:
            return tuple(
                (_jsonb_text(v) if i in jsonb else v).replace("\x00", "\ufffd")
                if isinstance(v, str)
                else v
                for i, v in enumerate(row)
            )

        return clean

    batch.traces = list(map(cleaner("traces"), batch.traces))
    batch.observations = list(map(cleaner("observations"), batch.observations))
    batch.scores = list(map(cleaner("scores"), batch.scores))


def _describe(params: dict[str, Any]) -> str:
    """Where the store is, without the password (for status pages and error messages)."""
    user = params.get("user") or ""
    host = params.get("host") or "localhost"
    port = params.get("port") or 5432
    db = params.get("dbname") or user
    options = params.get("options") or ""
    schema = re.search(r"search_path=([\w,$\"]+)", options)
    suffix = f" (schema {schema.group(1)})" if schema else ""
    return f"postgresql://{user + '@' if user else ''}{host}:{port}/{db}{suffix}"

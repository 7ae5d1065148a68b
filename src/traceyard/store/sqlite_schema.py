"""SQLite schema, as an ordered list of migrations; ``PRAGMA user_version`` counts those applied.

Never edit a released migration: append a new one. Times are integer nanoseconds since the
epoch; JSON columns hold text. Columns marked *derived* are recomputed by the store after each
write from the trace's observations, so listings can filter and sort on them with an index.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: the first release.
    """
    CREATE TABLE traces (
        id TEXT PRIMARY KEY,
        project TEXT NOT NULL,
        name TEXT,
        user_id TEXT,
        session_id TEXT,
        tags TEXT,
        metadata TEXT,
        release TEXT,
        version TEXT,
        environment TEXT,
        input TEXT,
        input_ref INTEGER,
        output TEXT,
        output_ref INTEGER,
        start_time INTEGER,
        end_time INTEGER,
        incomplete INTEGER,
        -- derived
        start_ns INTEGER,
        end_ns INTEGER,
        latency_ms REAL,
        status TEXT NOT NULL DEFAULT 'running',
        observation_count INTEGER NOT NULL DEFAULT 0,
        open_count INTEGER NOT NULL DEFAULT 0,
        error_count INTEGER NOT NULL DEFAULT 0,
        usage TEXT,
        total_tokens REAL NOT NULL DEFAULT 0,
        total_cost REAL NOT NULL DEFAULT 0
    );
    CREATE INDEX traces_start ON traces (start_ns DESC, id DESC);
    CREATE INDEX traces_project_start ON traces (project, start_ns DESC, id DESC);
    CREATE INDEX traces_session ON traces (session_id, start_ns) WHERE session_id IS NOT NULL;
    CREATE INDEX traces_user ON traces (user_id, start_ns) WHERE user_id IS NOT NULL;
    CREATE INDEX traces_latency ON traces (latency_ms DESC, id DESC);
    CREATE INDEX traces_cost ON traces (total_cost DESC, id DESC);
    CREATE INDEX traces_tokens ON traces (total_tokens DESC, id DESC);

    CREATE TABLE observations (
        id TEXT PRIMARY KEY,
        trace_id TEXT NOT NULL,
        parent_id TEXT,
        type TEXT,
        name TEXT,
        start_time INTEGER,
        end_time INTEGER,
        level TEXT,
        status_message TEXT,
        input TEXT,
        input_ref INTEGER,
        output TEXT,
        output_ref INTEGER,
        metadata TEXT,
        model TEXT,
        model_parameters TEXT,
        usage TEXT,
        cost TEXT,
        cost_source TEXT,
        total_tokens REAL,
        total_cost REAL,
        completion_start_time INTEGER,
        prompt_name TEXT,
        prompt_version INTEGER
    );
    CREATE INDEX observations_trace ON observations (trace_id, start_time);
    CREATE INDEX observations_model ON observations (model, trace_id) WHERE model IS NOT NULL;

    CREATE TABLE scores (
        id TEXT PRIMARY KEY,
        trace_id TEXT,
        observation_id TEXT,
        session_id TEXT,
        project TEXT NOT NULL,
        name TEXT NOT NULL,
        value REAL,
        string_value TEXT,
        data_type TEXT NOT NULL,
        source TEXT NOT NULL,
        comment TEXT,
        metadata TEXT,
        timestamp INTEGER
    );
    CREATE INDEX scores_trace ON scores (trace_id);
    CREATE INDEX scores_session ON scores (session_id) WHERE session_id IS NOT NULL;

    -- Inputs and outputs above blob_threshold_bytes, zlib-compressed, off the hot rows.
    CREATE TABLE payloads (
        owner TEXT NOT NULL,
        field TEXT NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (owner, field)
    ) WITHOUT ROWID;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)

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
    # 2: cheap counts, prompt management, media uploads.
    """
    -- counts() must not scan: triggers keep these in step inside every write transaction.
    -- An upsert that updates an existing row fires no INSERT trigger, so retries count once.
    CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO counters (name, value)
        SELECT 'traces', COUNT(*) FROM traces
        UNION ALL SELECT 'observations', COUNT(*) FROM observations
        UNION ALL SELECT 'scores', COUNT(*) FROM scores;
    CREATE TRIGGER traces_counted AFTER INSERT ON traces
        BEGIN UPDATE counters SET value = value + 1 WHERE name = 'traces'; END;
    CREATE TRIGGER traces_uncounted AFTER DELETE ON traces
        BEGIN UPDATE counters SET value = value - 1 WHERE name = 'traces'; END;
    CREATE TRIGGER observations_counted AFTER INSERT ON observations
        BEGIN UPDATE counters SET value = value + 1 WHERE name = 'observations'; END;
    CREATE TRIGGER observations_uncounted AFTER DELETE ON observations
        BEGIN UPDATE counters SET value = value - 1 WHERE name = 'observations'; END;
    CREATE TRIGGER scores_counted AFTER INSERT ON scores
        BEGIN UPDATE counters SET value = value + 1 WHERE name = 'scores'; END;
    CREATE TRIGGER scores_uncounted AFTER DELETE ON scores
        BEGIN UPDATE counters SET value = value - 1 WHERE name = 'scores'; END;

    CREATE TABLE prompts (
        project TEXT NOT NULL,
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        type TEXT NOT NULL,
        prompt TEXT NOT NULL,
        config TEXT,
        labels TEXT NOT NULL,
        tags TEXT NOT NULL,
        commit_message TEXT,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (project, name, version)
    );

    CREATE TABLE media (
        id TEXT PRIMARY KEY,
        project TEXT NOT NULL,
        trace_id TEXT,
        observation_id TEXT,
        field TEXT,
        content_type TEXT NOT NULL,
        content_length INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        data BLOB,
        created_at INTEGER NOT NULL,
        uploaded_at INTEGER
    );
    CREATE INDEX media_trace ON media (trace_id) WHERE trace_id IS NOT NULL;

    -- "some observation has level X" (X other than DEFAULT, which is the NULL majority)
    CREATE INDEX observations_level ON observations (level, trace_id) WHERE level IS NOT NULL;
    -- timeseries: every column it reads, so a week of traces is one index-only range scan
    CREATE INDEX traces_timeseries ON traces (start_ns, status, latency_ms, observation_count,
        error_count, total_tokens, total_cost, project, name);
    -- timeseries by model: the generations of each trace without reading observation rows
    CREATE INDEX observations_generations ON observations (trace_id, model, level, start_time,
        end_time, total_tokens, total_cost) WHERE model IS NOT NULL;
    """,
    # 3: the observations that name a managed prompt (the prompt filter and usage counts).
    """
    CREATE INDEX observations_prompt ON observations (prompt_name, prompt_version, trace_id)
        WHERE prompt_name IS NOT NULL;
    """,
    # 4: per-level counts on traces (derived), so every level filter is a predicate on traces.
    """
    -- "some observation has level X" became "X_count > 0" (error_count already existed). An
    -- EXISTS over observations was fast when X was common and scanned every trace when rare.
    ALTER TABLE traces ADD COLUMN debug_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE traces ADD COLUMN default_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE traces ADD COLUMN warning_count INTEGER NOT NULL DEFAULT 0;
    UPDATE traces SET debug_count = a.debug_n, default_count = a.default_n,
                      warning_count = a.warning_n
    FROM (SELECT trace_id, SUM(level IS 'DEBUG') AS debug_n,
                 SUM(level IS NULL OR level = 'DEFAULT') AS default_n,
                 SUM(level IS 'WARNING') AS warning_n
          FROM observations GROUP BY trace_id) AS a
    WHERE traces.id = a.trace_id;
    -- The newest traces with a rare level, in listing order: a level filter walks only its
    -- own traces. Partial, so a trace without that level costs the writer nothing here.
    -- DEFAULT (nearly every trace) needs none: the start-time index finds its matches at once.
    CREATE INDEX traces_debug ON traces (start_ns DESC, id DESC) WHERE debug_count > 0;
    CREATE INDEX traces_warning ON traces (start_ns DESC, id DESC) WHERE warning_count > 0;
    CREATE INDEX traces_error ON traces (start_ns DESC, id DESC) WHERE error_count > 0;
    -- served only the old EXISTS filter; one index less for every observation written
    DROP INDEX observations_level;
    """,
    # 5: the hourly rollup the timeseries reads (see store/_hours.py).
    """
    -- derived: bin of latency_ms (see LATENCY_BIN below), -1 while the trace is running
    ALTER TABLE traces ADD COLUMN latency_bin INTEGER NOT NULL DEFAULT -1;
    UPDATE traces SET latency_bin = CASE WHEN status = 'running' THEN -1 ELSE
        length(CAST(CAST(latency_ms * 1000 AS INTEGER) AS TEXT)) * 100
        + CAST(substr(CAST(CAST(latency_ms * 1000 AS INTEGER) AS TEXT), 1, 2) AS INTEGER) END;
    -- per hour of start (start_ns / 3600e9), project and latency bin: how many traces and
    -- what they add up to. Kept in step with the derived columns in every write transaction.
    CREATE TABLE trace_hours (
        hour INTEGER NOT NULL,
        project TEXT NOT NULL,
        latency_bin INTEGER NOT NULL,
        traces INTEGER NOT NULL,
        observations INTEGER NOT NULL,
        errors INTEGER NOT NULL,
        tokens REAL NOT NULL,
        cost REAL NOT NULL,
        -- hour, then bin: a range of hours groups by (hour, bin) in key order, no sort
        PRIMARY KEY (hour, latency_bin, project)
    ) WITHOUT ROWID;
    INSERT INTO trace_hours
        SELECT start_ns / 3600000000000, project, latency_bin, COUNT(*),
               TOTAL(observation_count), TOTAL(error_count), TOTAL(total_tokens),
               TOTAL(total_cost)
        FROM traces WHERE start_ns IS NOT NULL GROUP BY 1, 2, 3;
    -- a percentile's bin in one bucket: its finished traces, without reading their rows
    CREATE INDEX traces_latency_bins ON traces (latency_bin, start_ns, latency_ms, project)
        WHERE latency_bin >= 0;
    """,
]

#: The latency bin of ``{0}`` (latency_ms): digits and leading two digits of whole µs.
LATENCY_BIN = (
    "(length(CAST(CAST(({0}) * 1000 AS INTEGER) AS TEXT)) * 100"
    " + CAST(substr(CAST(CAST(({0}) * 1000 AS INTEGER) AS TEXT), 1, 2) AS INTEGER))"
)

SCHEMA_VERSION = len(MIGRATIONS)

"""PostgreSQL schema, as an ordered list of migrations; ``traceyard_schema.version`` counts those
applied. Never edit a released migration: append a new one.

It mirrors the SQLite schema (same columns, same derived columns) with PostgreSQL types:
structured JSON (tags, metadata, usage, cost, model parameters) is ``jsonb`` so filters can
use containment and GIN indexes; inputs and outputs are JSON *text*, because they are opaque
payloads: ``jsonb`` would reorder their keys, reject ``\\u0000`` and parse every payload on the
hot write path, only for substring search, which works on text. Ids are ``COLLATE "C"``: byte
order, so keyset cursors and ties sort exactly as on SQLite, and comparisons skip ICU/libc.
"""

from __future__ import annotations

#: Applied in order, each in the migrating transaction (under the advisory lock).
MIGRATIONS: list[str] = [
    # 1: the core tables (what SQLite's first migration has).
    """
    CREATE TABLE traces (
        id text COLLATE "C" PRIMARY KEY,
        project text NOT NULL,
        name text,
        user_id text COLLATE "C",
        session_id text COLLATE "C",
        tags jsonb,
        metadata jsonb,
        release text,
        version text,
        environment text,
        input text,
        input_ref smallint,
        output text,
        output_ref smallint,
        start_time bigint,
        end_time bigint,
        incomplete smallint,
        -- derived (recomputed from the observations after every write)
        start_ns bigint NOT NULL DEFAULT 0,
        end_ns bigint NOT NULL DEFAULT 0,
        latency_ms double precision NOT NULL DEFAULT 0,
        status text NOT NULL DEFAULT 'running',
        observation_count integer NOT NULL DEFAULT 0,
        open_count integer NOT NULL DEFAULT 0,
        error_count integer NOT NULL DEFAULT 0,
        usage jsonb,
        total_tokens double precision NOT NULL DEFAULT 0,
        total_cost double precision NOT NULL DEFAULT 0
    );
    -- keyset pagination: one index per sort, id breaking ties
    CREATE INDEX traces_start ON traces (start_ns DESC, id DESC);
    CREATE INDEX traces_project_start ON traces (project, start_ns DESC, id DESC);
    CREATE INDEX traces_latency ON traces (latency_ms DESC, id DESC);
    CREATE INDEX traces_cost ON traces (total_cost DESC, id DESC);
    CREATE INDEX traces_tokens ON traces (total_tokens DESC, id DESC);
    -- sessions and users pages, and their detail views
    CREATE INDEX traces_session ON traces (session_id, start_ns) WHERE session_id IS NOT NULL;
    CREATE INDEX traces_user ON traces (user_id, start_ns) WHERE user_id IS NOT NULL;
    -- "has all these tags": tags @> '["a","b"]'
    CREATE INDEX traces_tags ON traces USING gin (tags jsonb_path_ops);

    CREATE TABLE observations (
        id text COLLATE "C" PRIMARY KEY,
        trace_id text COLLATE "C" NOT NULL,
        parent_id text,
        type text,
        name text,
        start_time bigint,
        end_time bigint,
        level text,
        status_message text,
        input text,
        input_ref smallint,
        output text,
        output_ref smallint,
        metadata jsonb,
        model text,
        model_parameters jsonb,
        usage jsonb,
        cost jsonb,
        cost_source text,
        total_tokens double precision,
        total_cost double precision,
        completion_start_time bigint,
        prompt_name text,
        prompt_version integer
    ) WITH (fillfactor = 80);  -- room on the page: the end event's update can be HOT
    -- a trace's tree in order, and the per-batch recompute of its totals
    CREATE INDEX observations_trace ON observations (trace_id, start_time);
    -- "some generation used this model" and the per-model timeseries
    CREATE INDEX observations_model ON observations (model, trace_id) WHERE model IS NOT NULL;
    -- "some observation has level X" (X other than DEFAULT, which is the NULL majority)
    CREATE INDEX observations_level ON observations (level, trace_id) WHERE level IS NOT NULL;

    CREATE TABLE scores (
        id text COLLATE "C" PRIMARY KEY,
        trace_id text COLLATE "C",
        observation_id text,
        session_id text,
        project text NOT NULL,
        name text NOT NULL,
        value double precision,
        string_value text,
        data_type text NOT NULL,
        source text NOT NULL,
        comment text,
        metadata jsonb,
        timestamp bigint
    );
    CREATE INDEX scores_trace ON scores (trace_id);
    CREATE INDEX scores_recent ON scores ((COALESCE(timestamp, 0)) DESC, id DESC);
    CREATE INDEX scores_session ON scores (session_id) WHERE session_id IS NOT NULL;

    -- Inputs and outputs above blob_threshold_bytes, compressed, off the hot rows.
    CREATE TABLE payloads (
        owner text COLLATE "C" NOT NULL,
        field text NOT NULL,
        data bytea NOT NULL,
        PRIMARY KEY (owner, field)
    );
    """,
    # 2: cheap counts, prompt management, media uploads (SQLite's second migration).
    """
    -- counts() must not scan. Each writer adds what its transaction inserted or deleted to
    -- one of 64 shards (chosen by backend pid), so writers in several processes rarely wait
    -- on the same counter row; counts() sums at most 64 rows.
    CREATE TABLE counters (
        shard integer PRIMARY KEY,
        traces bigint NOT NULL DEFAULT 0,
        observations bigint NOT NULL DEFAULT 0,
        scores bigint NOT NULL DEFAULT 0
    );
    INSERT INTO counters (shard, traces, observations, scores) VALUES (
        0,
        (SELECT COUNT(*) FROM traces),
        (SELECT COUNT(*) FROM observations),
        (SELECT COUNT(*) FROM scores)
    );

    CREATE TABLE prompts (
        project text NOT NULL,
        name text NOT NULL,
        version integer NOT NULL,
        type text NOT NULL,
        prompt jsonb NOT NULL,
        config jsonb,
        labels jsonb NOT NULL,
        tags jsonb NOT NULL,
        commit_message text,
        created_at bigint NOT NULL,
        PRIMARY KEY (project, name, version)
    );

    CREATE TABLE media (
        id text COLLATE "C" PRIMARY KEY,
        project text NOT NULL,
        trace_id text COLLATE "C",
        observation_id text,
        field text,
        content_type text NOT NULL,
        content_length bigint NOT NULL,
        sha256 text NOT NULL,
        data bytea,
        created_at bigint NOT NULL,
        uploaded_at bigint
    );
    CREATE INDEX media_trace ON media (trace_id) WHERE trace_id IS NOT NULL;
    """,
    # 3: the observations that name a managed prompt (the prompt filter and usage counts).
    """
    CREATE INDEX observations_prompt ON observations (prompt_name, prompt_version, trace_id)
        WHERE prompt_name IS NOT NULL;
    """,
    # 4: per-level counts on traces (SQLite's fourth migration).
    """
    -- "some observation has level X" became "X_count > 0" (error_count already existed). An
    -- EXISTS over observations was fast when X was common and scanned every trace when rare.
    ALTER TABLE traces ADD COLUMN debug_count integer NOT NULL DEFAULT 0,
        ADD COLUMN default_count integer NOT NULL DEFAULT 0,
        ADD COLUMN warning_count integer NOT NULL DEFAULT 0;
    UPDATE traces SET debug_count = a.debug_n, default_count = a.default_n,
                      warning_count = a.warning_n
    FROM (SELECT trace_id, COUNT(*) FILTER (WHERE level = 'DEBUG') AS debug_n,
                 COUNT(*) FILTER (WHERE level IS NULL OR level = 'DEFAULT') AS default_n,
                 COUNT(*) FILTER (WHERE level = 'WARNING') AS warning_n
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
    # 5: the hourly rollup the timeseries reads (SQLite's fifth migration; store/_hours.py).
    """
    -- derived: bin of latency_ms (see LATENCY_BIN below), -1 while the trace is running
    ALTER TABLE traces ADD COLUMN latency_bin integer NOT NULL DEFAULT -1;
    UPDATE traces SET latency_bin =
        length(floor(latency_ms * 1000)::bigint::text) * 100
        + left(floor(latency_ms * 1000)::bigint::text, 2)::integer
    WHERE status <> 'running';
    -- per hour of start (start_ns / 3600e9), latency bin and project: how many traces and
    -- what they add up to. Kept in step with the derived columns in every write transaction.
    CREATE TABLE trace_hours (
        hour bigint NOT NULL,
        latency_bin integer NOT NULL,
        project text NOT NULL,
        traces bigint NOT NULL,
        observations bigint NOT NULL,
        errors bigint NOT NULL,
        tokens double precision NOT NULL,
        cost double precision NOT NULL,
        PRIMARY KEY (hour, latency_bin, project)
    );
    INSERT INTO trace_hours
        SELECT start_ns / 3600000000000, latency_bin, project, COUNT(*),
               SUM(observation_count), SUM(error_count), SUM(total_tokens), SUM(total_cost)
        FROM traces GROUP BY 1, 2, 3;
    -- a percentile's bin in one bucket: its finished traces, without reading their rows
    CREATE INDEX traces_latency_bins ON traces (latency_bin, start_ns)
        INCLUDE (latency_ms, project) WHERE latency_bin >= 0;
    """,
]

#: The latency bin of ``{0}`` (latency_ms): digits and leading two digits of whole µs.
LATENCY_BIN = (
    "(length(floor(({0}) * 1000)::bigint::text) * 100"
    " + left(floor(({0}) * 1000)::bigint::text, 2)::integer)"
)

SCHEMA_VERSION = len(MIGRATIONS)

#: Shards of the counters table (see migration 2).
COUNTER_SHARDS = 64

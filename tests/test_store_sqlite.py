"""What only the SQLite store does: schema migrations (from an empty file and from the
previous release's schema), trigger-kept counts, and space given back after a prune.
(The shared contract runs in test_store_contract.py.)"""

from __future__ import annotations

import random
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from store_contract import at, obs

from traceyard.errors import StoreError
from traceyard.model import Level, ns_to_datetime
from traceyard.store import sqlite as sqlite_store
from traceyard.store import sqlite_checkpoint
from traceyard.store.base import TimeseriesQuery, TraceQuery, TraceSort
from traceyard.store.sqlite import SQLiteStore, split_statements
from traceyard.store.sqlite_schema import MIGRATIONS, SCHEMA_VERSION


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {r[0] for r in rows}


def test_migrates_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
    assert _tables(path) == {
        "traces",
        "observations",
        "scores",
        "payloads",
        "counters",
        "prompts",
        "media",
        "trace_hours",
    }


def test_migrates_up_from_the_previous_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    with sqlite3.connect(path) as conn:
        for statement in split_statements(MIGRATIONS[0]):
            conn.execute(statement)
        conn.execute("PRAGMA user_version = 1")
        conn.execute("INSERT INTO traces (id, project, name) VALUES ('old', 'p', 'kept')")
        conn.executemany(
            "INSERT INTO observations (id, trace_id, start_time) VALUES (?, 'old', ?)",
            [("o1", at(0)), ("o2", at(1))],
        )
    store = SQLiteStore(path)
    try:
        counts = store.counts()
        assert (counts.traces, counts.observations, counts.scores) == (1, 2, 0)
        store.write([obs("o3", "old", start_time=at(2), end_time=at(3))])
        store.write([obs("o3", "old", output="again")])  # an update is not a new row
        assert store.counts().observations == 3
        detail = store.get_trace("old")
        assert detail is not None and detail.name == "kept"
        assert [o.id for o in detail.observations] == ["o1", "o2", "o3"]
        assert store.save_prompt("p", "n", "text").version == 1
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        # migration 3: the prompt filter is answered from its index
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT 1 FROM observations o "
            "WHERE o.prompt_name = 'n' AND o.prompt_version = 1 AND o.trace_id = 'old'"
        ).fetchall()
        assert "observations_prompt" in str(plan)


def test_migration_4_counts_the_levels_of_existing_traces(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    with sqlite3.connect(path) as conn:
        for migration in MIGRATIONS[:3]:
            for statement in split_statements(migration):
                conn.execute(statement)
        conn.execute("PRAGMA user_version = 3")
        conn.executemany("INSERT INTO traces (id, project) VALUES (?, 'p')", [("a",), ("b",)])
        conn.executemany(
            "INSERT INTO observations (id, trace_id, level) VALUES (?, ?, ?)",
            [("a1", "a", "WARNING"), ("a2", "a", None), ("b1", "b", "DEBUG")],
        )
    store = SQLiteStore(path)
    try:
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


def test_a_schema_newer_than_this_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="newer than this traceyard"):
        SQLiteStore(path)


def test_trigger_statements_survive_splitting() -> None:
    statements = split_statements(MIGRATIONS[1])
    triggers = [s for s in statements if s.startswith("CREATE TRIGGER")]
    assert len(triggers) == 6
    assert all(s.rstrip(";").endswith("END") for s in triggers)


def test_prune_gives_the_space_back(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    store = SQLiteStore(path, blob_threshold_bytes=100)
    try:
        store.write(
            [
                obs(f"o{i}", f"t{i}", start_time=at(i), input=f"{i}-" + "x" * 20_000)
                for i in range(200)
            ]
        )
        assert store.prune(max_traces=10) == 190
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0
        assert store.counts().traces == 10
    finally:
        store.close()


def test_whole_hours_come_from_the_rollup(tmp_path: Path) -> None:
    # The contract tests check the answers; this checks the fast path is the one taken for
    # buckets of whole hours, and that the traces path gives the same series.
    store = SQLiteStore(tmp_path / "t.db")
    try:
        store.write(
            [
                obs(f"o{i}", f"t{i}", start_time=at(i * 600), end_time=at(i * 600 + i + 1))
                for i in range(30)
            ]
        )
        start = ns_to_datetime(at(0))
        assert start is not None
        query = TimeseriesQuery(start=start, end=start + timedelta(hours=5))
        fast = store._timeseries_by_hours(query)
        assert fast is not None and len(fast) == 5
        assert fast == store._timeseries_from_traces(query)
        off_the_hour = query.model_copy(update={"start": start + timedelta(minutes=30)})
        assert store._timeseries_by_hours(off_the_hour) is None
    finally:
        store.close()


@pytest.mark.parametrize("few_links", [5000, 1], ids=["from-links", "walk-traces"])
def test_prompt_filter_gives_the_same_traces_either_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, few_links: int
) -> None:
    # the listing starts from the prompt's links when they are few, else walks the traces
    monkeypatch.setattr(sqlite_store, "_FEW_PROMPT_LINKS", few_links)
    store = SQLiteStore(tmp_path / "t.db")
    try:
        events = []
        for i in range(6):
            project = "a" if i % 2 else "b"
            link = {"prompt_name": "p", "prompt_version": 1 + i % 3} if i else {}
            events.append(obs(f"o{i}", f"t{i}", project, start_time=at(i), **link))
        store.write(events)

        def ids(**filters: Any) -> list[str]:
            return [t.id for t in store.list_traces(TraceQuery(**filters)).data]

        assert ids(prompt_name="p") == ["t5", "t4", "t3", "t2", "t1"]
        assert ids(prompt_name="p", prompt_version=1) == ["t3"]
        assert ids(prompt_name="p", prompt_version=2, project="a") == ["t1"]
        assert ids(prompt_name="p", project="b", sort=TraceSort.START_TIME, descending=False) == [
            "t2",
            "t4",
        ]
    finally:
        store.close()


def test_the_held_pass_holds_other_writers_and_the_wal_restarts(tmp_path: Path) -> None:
    """Another process's commits are not held by this process's gate: the last pass must keep
    them out itself (with two ingest workers the WAL grew to 2.9 GB in 50 s otherwise)."""
    path = tmp_path / "t.db"
    store = SQLiteStore(path)
    store.write(
        [obs(f"o{n}", "t", name="n", start_time=at(n), input="x" * 5000) for n in range(50)]
    )
    store._checkpointer.close()  # its thread's passes would race the ones this test makes
    checkpointer = sqlite3.connect(path, isolation_level=None)
    other = sqlite3.connect(path, isolation_level=None)  # another process's writer
    other.execute("PRAGMA wal_autocheckpoint=0")
    other.execute("BEGIN IMMEDIATE")
    other.execute("UPDATE observations SET name = 'm' WHERE id = 'o1'")
    # A writer is mid-transaction: the pass waits for it (RESTART_WAIT_MS), then gives up
    # rather than leave frames behind it (a passive pass would report success).
    assert sqlite_checkpoint._restart(checkpointer) is False
    other.execute("COMMIT")
    frames_before = sqlite_checkpoint._checkpoint(checkpointer)
    assert frames_before > 0
    assert sqlite_checkpoint._restart(checkpointer) is True
    # ...and the next commit, whoever makes it, starts the WAL from the beginning.
    other.execute("UPDATE observations SET name = 'k' WHERE id = 'o2'")
    assert 0 < sqlite_checkpoint._checkpoint(checkpointer) < frames_before
    other.close()
    checkpointer.close()
    observation = store.get_observation("o2")
    assert observation is not None and observation.name == "k"
    store.close()


def test_checkpoints_run_off_the_commit_path_and_the_wal_restarts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_checkpoint, "RESTART_FRAMES", 64)  # 256 KiB
    monkeypatch.setattr(sqlite_checkpoint, "MIN_INTERVAL_S", 0.0)
    store = SQLiteStore(tmp_path / "t.db", blob_threshold_bytes=100)
    rng = random.Random(3)
    written = 0
    batches = 0
    while (store._checkpointer.restarts < 2 or written < 4_000_000) and batches < 2000:
        text = "".join(rng.choices("abcdefghijklmnopqrstuvwxyz ", k=20_000))
        store.write(
            [obs(f"o{batches}", f"t{batches}", name="n", start_time=at(batches), input=text)]
        )
        written += len(text)
        batches += 1
    assert store._checkpointer.restarts >= 2
    # the connection that commits never checkpoints: the checkpointer thread does
    assert store._conn().execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    # the WAL was restarted and reused, not grown by everything written through it
    assert (tmp_path / "t.db-wal").stat().st_size < written / 2, store._checkpointer.restarts
    assert store.counts().observations == batches
    last = store.get_observation(f"o{batches - 1}")
    assert last is not None and isinstance(last.input, str) and len(last.input) == 20_000
    store.close()
    conn = sqlite3.connect(tmp_path / "t.db")
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()

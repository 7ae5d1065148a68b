"""The operations CLI: status, export/import round trip, prune, backup of a live data dir."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from traceyard.capture.tracer import Tracer
from traceyard.cli import app
from traceyard.model import Entity, Event
from traceyard.server.sqlite_ops import dir_size
from traceyard.store.sqlite import SQLiteStore

runner = CliRunner()


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def _traced(data_dir: Path, rounds: int = 12) -> list[str]:
    """Real tracer output: nested spans, generations with usage, errors, scores, big payloads."""
    tracer = Tracer.create(data_dir=data_dir, start_server=False, blob_threshold_bytes=1000)
    ids = []
    for i in range(rounds):
        with tracer.span(f"agent-{i % 3}", input={"q": f"question {i} — ünïcode ✓"}) as root:
            tracer.update_trace(user_id=f"u{i % 2}", session_id=f"s{i % 4}", tags=["t", f"r{i}"],
                                metadata={"env": "prod" if i % 2 else "dev", "i": i})  # fmt: skip
            with tracer.generation(
                "llm", model="gpt-4o-mini", usage={"input": 100 + i, "output": 7, "cache_read": 3}
            ) as gen:
                gen.update(output={"text": "y" * (5000 if i % 4 == 0 else 10)})
            with tracer.span("tool", as_type="tool") as tool:
                if i % 5 == 0:
                    tool.update(level="ERROR", status_message="boom")
            root.update(output=f"done {i}")
        tracer.score("quality", i / 10, trace_id=root.trace_id, comment="ok")
        tracer.score("label", "good", trace_id=root.trace_id)
        ids.append(root.trace_id)
    assert tracer.stop() == 0
    return ids


def test_help_lists_every_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "traceyard.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for command in ("serve", "status", "export", "import", "prune", "backup", "demo"):
        assert command in result.stdout


def test_help_names_the_variables_and_defaults() -> None:
    # "[env: ...]" in a help text is rich markup unless escaped: it used to vanish.
    code, out, _ = _run("serve", "--help")
    assert code == 0
    for shown in ("TRACEYARD_DATA_DIR", "TRACEYARD_AUTH_TOKEN", "TRACEYARD_INGEST_WORKERS", "7842"):
        assert shown in out, shown


def test_status_json(tmp_path: Path) -> None:
    ids = _traced(tmp_path / "d", rounds=3)
    code, out, _ = _run("status", "--data-dir", str(tmp_path / "d"), "--json")
    assert code == 0
    status = json.loads(out)
    assert status["backend"] == "sqlite"
    assert status["counts"] == {"traces": len(ids), "observations": 3 * len(ids), "scores": 6}
    assert status["data_dir_size_bytes"] > 0 and status["server"] is None
    missing, _, err = _run("status", "--data-dir", str(tmp_path / "nothing"))
    assert missing == 1 and "no traceyard data" in err
    assert not (tmp_path / "nothing").exists(), "status must not create a data dir"


def test_export_import_export_is_byte_identical(tmp_path: Path) -> None:
    ids = _traced(tmp_path / "a")
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    assert _run("export", "-d", str(tmp_path / "a"), "-o", str(first))[0] == 0
    code, _, err = _run("import", str(first), "-d", str(tmp_path / "b"))
    assert code == 0 and f"imported {len(ids)} traces" in err
    assert _run("export", "-d", str(tmp_path / "b"), "-o", str(second))[0] == 0
    assert first.read_bytes() == second.read_bytes()
    lines = [json.loads(line) for line in first.read_text().splitlines()]
    assert sorted(t["id"] for t in lines) == sorted(ids)
    sample = next(
        t for t in lines if t["name"] == "agent-0" and t["input"]["q"].startswith("question 0")
    )
    assert sample["input"]["q"].endswith("ünïcode ✓")
    assert len(sample["observations"]) == 3 and len(sample["scores"]) == 2
    generation = next(o for o in sample["observations"] if o["type"] == "generation")
    assert generation["output"] == {"text": "y" * 5000}, "big payloads are exported whole"
    assert generation["usage"]["input"] == 100 and generation["cost"]["total"] > 0
    # importing again updates in place: no duplicates
    assert _run("import", str(first), "-d", str(tmp_path / "b"))[0] == 0
    store = SQLiteStore.in_dir(tmp_path / "b")
    assert store.counts().traces == len(ids)
    store.close()


def test_export_filters(tmp_path: Path) -> None:
    _traced(tmp_path / "a")
    code, out, _ = _run("export", "-d", str(tmp_path / "a"), "--user-id", "u1", "--tag", "t",
                        "--metadata", "env:prod")  # fmt: skip
    assert code == 0
    exported = [json.loads(line) for line in out.splitlines()]
    assert len(exported) == 6 and {t["user_id"] for t in exported} == {"u1"}


def test_import_keeps_the_good_lines_of_a_partly_bad_file(tmp_path: Path) -> None:
    _traced(tmp_path / "a", rounds=2)
    exported = tmp_path / "x.jsonl"
    _run("export", "-d", str(tmp_path / "a"), "-o", str(exported))
    good = exported.read_text().splitlines()
    exported.write_text(
        "\n".join([good[0], '{"id": 5, "observations": "no"}', "not json", good[1]])
    )
    code, _, err = _run("import", str(exported), "-d", str(tmp_path / "b"))
    assert code == 1
    assert "line 2" in err and "line 3" in err and "imported 2 traces; 2 bad lines" in err


def _seed_aged(data_dir: Path, count: int, days_old: float, prefix: str) -> None:
    store = SQLiteStore.in_dir(data_dir, blob_threshold_bytes=100)
    start = int((time.time() - days_old * 86400) * 1e9)
    events = []
    for i in range(count):
        trace_id = f"{prefix}-{i:03d}"
        fields = {
            "name": "o",
            "start_time": start + i * 10**9,
            "end_time": start + i * 10**9 + 1000,
            "input": os.urandom(20_000).hex(),  # incompressible: the space is real
        }
        events.append(Event(Entity.OBSERVATION, f"{trace_id}-o", trace_id, "default", fields))
    store.write(events)
    store.close()


def test_prune_by_age_and_count_oldest_first_and_reclaims_space(tmp_path: Path) -> None:
    data = tmp_path / "d"
    _seed_aged(data, 30, days_old=10, prefix="old")
    _seed_aged(data, 20, days_old=1, prefix="new")
    db = data / "traceyard.db"
    assert sqlite3.connect(db).execute("SELECT count(*) FROM payloads").fetchone()[0] == 50
    size_before = dir_size(data)
    code, _, err = _run("prune", "-d", str(data), "--older-than", "7d")
    assert code == 0 and "deleted 30 traces" in err
    code, _, err = _run("prune", "-d", str(data), "--max-traces", "5")
    assert code == 0 and "deleted 15 traces" in err
    conn = sqlite3.connect(db)
    left = [r[0] for r in conn.execute("SELECT id FROM traces ORDER BY id")]
    assert left == [f"new-{i:03d}" for i in range(15, 20)], "the newest are kept"
    assert conn.execute("SELECT count(*) FROM payloads").fetchone()[0] == 5
    conn.close()
    assert dir_size(data) < size_before / 4, "space was given back"
    bad, _, err = _run("prune", "-d", str(data), "--older-than", "soon")
    assert bad == 2 and "duration" in err
    assert _run("prune", "-d", str(data))[0] == 2


_WRITER = """
import sys, time
from traceyard.capture.tracer import Tracer
tracer = Tracer.create(data_dir=sys.argv[1], start_server=False, worker_batch_timeout=0.01)
i = 0
while True:
    with tracer.span("job", input={"i": i, "pad": "p" * 2000}) as root:
        for j in range(5):
            with tracer.span("step"):
                pass
    i += 1
    if i % 50 == 0:
        tracer.flush()
        print(i, flush=True)
"""


def test_backup_of_a_live_data_dir_is_consistent_and_restorable(tmp_path: Path) -> None:
    data, copy = tmp_path / "live", tmp_path / "copy"
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(data)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None
        while int(writer.stdout.readline() or 0) < 200:  # bounded by the test timeout
            assert writer.poll() is None, "the writer died"
        result = subprocess.run(
            [sys.executable, "-m", "traceyard.cli", "backup", str(copy), "--data-dir", str(data)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "integrity_check: ok" in result.stderr
        still_writing = int(writer.stdout.readline())
        assert writer.poll() is None and still_writing >= 200
    finally:
        writer.kill()
        writer.wait()
    conn = sqlite3.connect(copy / "traceyard.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # Consistent: every trace's derived count matches the observations it has in the copy.
    mismatched = conn.execute(
        "SELECT count(*) FROM traces t WHERE observation_count != "
        "(SELECT count(*) FROM observations o WHERE o.trace_id = t.id)"
    ).fetchone()[0]
    traces = conn.execute("SELECT count(*) FROM traces").fetchone()[0]
    conn.close()
    assert traces >= 200 and mismatched == 0
    code, out, _ = _run("status", "--data-dir", str(copy), "--json")
    assert code == 0 and json.loads(out)["counts"]["traces"] == traces
    again = subprocess.run(
        [sys.executable, "-m", "traceyard.cli", "backup", str(copy), "--data-dir", str(data)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert again.returncode == 1 and "already exists" in again.stderr


def test_serve_refuses_a_public_host_without_a_token(tmp_path: Path) -> None:
    code, _, err = _run("serve", "-d", str(tmp_path), "--host", "0.0.0.0")
    assert code == 2 and "TRACEYARD_AUTH_TOKEN" in err


@pytest.mark.parametrize("command", ["export", "prune"])
def test_commands_name_a_missing_data_dir(tmp_path: Path, command: str) -> None:
    code, _, err = (
        _run(command, "-d", str(tmp_path / "none"), "--max-traces", "1")
        if (command == "prune")
        else _run(command, "-d", str(tmp_path / "none"))
    )
    assert code == 1 and "no traceyard data" in err

"""The pipeline never hurts the app: bounded queue, drops counted, sampling keeps whole traces,
caps, stop/flush durability, crashes, several processes, fork, config errors."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

import traceyard
from traceyard._internal import guard
from traceyard.config import load_settings
from traceyard.errors import ConfigError
from traceyard.model import Event, TraceStatus
from traceyard.store._rows import RowBatch
from traceyard.store.base import TraceQuery
from traceyard.store.sqlite import DB_FILENAME, SQLiteStore

SRC = str(Path(__file__).resolve().parents[1] / "src")


class GatedStore(SQLiteStore):
    """The real SQLite store, whose transactions wait until the test opens the gate."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = threading.Event()
        self.entered = threading.Event()

    def commit(self, batch: RowBatch) -> None:
        self.entered.set()
        self.gate.wait(30)
        super().commit(batch)


def _settings(data_dir: Path, **overrides: object) -> traceyard.Settings:
    return traceyard.Settings(data_dir=data_dir, start_server=False, **overrides)  # type: ignore[arg-type]


def _count(data_dir: Path, table: str) -> int:
    conn = sqlite3.connect(data_dir / DB_FILENAME)
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


def test_full_queue_drops_counts_and_marks_traces_incomplete(data_dir: Path) -> None:
    store = GatedStore(data_dir / DB_FILENAME)
    settings = _settings(data_dir, queue_maxsize=50, worker_batch_size=10)
    tracer = traceyard.Tracer(settings, store_factory=lambda: store)
    emitted = 0
    # a root span emits 3 events: its trace's attributes, its start and its end
    with tracer.span("first"):  # taken by the writer, which then blocks
        pass
    emitted += 3
    assert store.entered.wait(10)
    started = time.perf_counter()
    for i in range(100):  # 300 events into a queue of 50 held by a blocked writer
        with tracer.span(f"s{i}"):
            pass
        emitted += 3
    elapsed = time.perf_counter() - started
    stats = tracer.stats()
    assert stats.events_dropped > 0 and stats.queue_depth <= stats.queue_max
    assert elapsed < 5  # never blocked on the full queue (a loose bound, not a benchmark)
    store.gate.set()
    assert tracer.stop(10) == 0
    stats = tracer.stats()
    assert stats.events_processed + stats.events_dropped + stats.events_sampled_out == emitted
    check = SQLiteStore(data_dir / DB_FILENAME)
    traces = check.list_traces(TraceQuery(limit=1000)).data
    statuses = {t.status for t in traces}
    assert TraceStatus.INCOMPLETE in statuses  # a trace that lost events says so
    assert all(t.status in (TraceStatus.OK, TraceStatus.INCOMPLETE) for t in traces)
    check.close()


class CountingStore(GatedStore):
    """A gated store that also says when it has prepared a second batch."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.prepared = 0
        self.second_prepared = threading.Event()

    def prepare(self, events: Sequence[Event]) -> RowBatch:
        batch = super().prepare(events)
        self.prepared += 1
        if self.prepared == 2:
            self.second_prepared.set()
        return batch


def test_the_next_batch_is_prepared_while_one_commits(data_dir: Path) -> None:
    store = CountingStore(data_dir / DB_FILENAME)
    tracer = traceyard.Tracer(_settings(data_dir, worker_batch_size=4), store_factory=lambda: store)
    with tracer.span("first"):  # 3 events: one batch, whose commit waits at the gate
        pass
    assert store.entered.wait(10)
    for i in range(4):
        with tracer.span(f"s{i}"):
            pass
    # the commit thread is still held, and the prepare thread went on to the next batch
    assert store.second_prepared.wait(10)
    assert tracer.stats().events_processed == 0
    store.gate.set()
    assert tracer.stop(10) == 0
    assert tracer.stats().events_processed == 15
    assert _count(data_dir, "observations") == 5


class FailingPrepareStore(SQLiteStore):
    """Preparing a batch that holds a span named "poison" fails, as a bug of ours would."""

    def prepare(self, events: Sequence[Event]) -> RowBatch:
        if any(e.fields.get("name") == "poison" for e in events):
            raise RuntimeError("bug while preparing")
        return super().prepare(events)


def test_a_batch_that_cannot_be_prepared_is_counted_lost(data_dir: Path) -> None:
    store = FailingPrepareStore(data_dir / DB_FILENAME)
    tracer = traceyard.Tracer(_settings(data_dir), store_factory=lambda: store)
    with tracer.span("before"):
        pass
    assert tracer.flush(10) == 0
    with tracer.span("poison"):
        pass
    assert tracer.flush(10) == 3  # its trace, start and end events
    with tracer.span("after"):
        pass
    assert tracer.stop(10) == 0
    stats = tracer.stats()
    assert (stats.events_processed, stats.events_dropped) == (6, 3)
    assert stats.last_error == "RuntimeError: bug while preparing"
    assert [type(e) for e in guard.recorded] == [RuntimeError]  # reported, never raised
    guard.recorded.clear()
    check = SQLiteStore(data_dir / DB_FILENAME)
    names = {t.name for t in check.list_traces(TraceQuery(limit=10)).data}
    check.close()
    assert names == {"before", "after"}


def test_sampling_keeps_whole_traces(data_dir: Path) -> None:
    tracer = traceyard.Tracer(_settings(data_dir, sample_rate=0.5))
    emitted = 0
    for i in range(200):
        with tracer.span(f"root-{i}"):
            for j in range(3):
                with tracer.span(f"child-{j}"):
                    tracer.event("tick")
        emitted += 3 + 3 * 2 + 3  # root (trace attrs, start, end), children, events
    assert tracer.stop() == 0
    stats = tracer.stats()
    assert stats.events_processed + stats.events_dropped + stats.events_sampled_out == emitted
    assert 0 < stats.events_sampled_out < emitted
    store = SQLiteStore(data_dir / DB_FILENAME)
    traces = store.list_traces(TraceQuery(limit=1000)).data
    assert 40 < len(traces) < 160  # about half of 200, whole traces only
    assert {t.observation_count for t in traces} == {7}
    store.close()


def test_per_run_event_cap_throttles_runaway_runs(data_dir: Path) -> None:
    tracer = traceyard.Tracer(_settings(data_dir, per_run_event_cap=20))
    with tracer.span("runaway"):
        for _ in range(100):
            tracer.event("spam")
    with tracer.span("small"):
        tracer.event("fine")
    assert tracer.stop() == 0
    stats = tracer.stats()
    assert stats.runs_throttled == 1
    assert stats.events_dropped == (3 + 100) - 20  # trace attrs, start, end + 100 events
    store = SQLiteStore(data_dir / DB_FILENAME)
    by_name = {t.name: t for t in store.list_traces(TraceQuery()).data}
    assert by_name["runaway"].status is TraceStatus.INCOMPLETE
    assert by_name["runaway"].observation_count == 19
    assert by_name["small"].status is TraceStatus.OK
    store.close()


def test_stop_persists_everything_queued(data_dir: Path) -> None:
    tracer = traceyard.Tracer(_settings(data_dir, worker_batch_timeout=5.0))
    for i in range(5000):
        with tracer.span(f"s{i}", input={"i": i}):
            pass
    assert tracer.stop() == 0
    assert tracer.stats().events_dropped == 0
    assert _count(data_dir, "observations") == 5000
    assert tracer.stop() == 0  # idempotent


def test_flush_returns_only_when_durable(data_dir: Path) -> None:
    tracer = traceyard.Tracer(_settings(data_dir, worker_batch_timeout=30.0))
    for i in range(10):
        with tracer.span(f"s{i}"):
            pass
    assert tracer.flush(10) == 0
    assert _count(data_dir, "observations") == 10  # read by another connection
    tracer.stop()


def test_big_payloads_are_stored_compressed_apart(data_dir: Path) -> None:
    tracer = traceyard.Tracer(_settings(data_dir, blob_threshold_bytes=1000))
    big = "lorem ipsum " * 5000
    with tracer.span("big", input={"text": big}) as span:
        span.update(output=big)
    with tracer.span("small", input="tiny"):
        pass
    tracer.stop()
    conn = sqlite3.connect(data_dir / DB_FILENAME)
    rows = conn.execute("SELECT owner, field, length(data) FROM payloads").fetchall()
    inline = conn.execute("SELECT input FROM observations WHERE name = 'big'").fetchone()
    conn.close()
    assert {r[1] for r in rows} == {"input", "output", "trace.input", "trace.output"}
    assert all(r[2] < len(big) / 10 for r in rows)  # compressed
    assert inline == (None,)  # off the hot row
    store = SQLiteStore(data_dir / DB_FILENAME)
    detail = store.get_trace(span.trace_id)
    assert detail is not None
    assert detail.input == {"text": big} and detail.observations[0].output == big
    store.close()


def test_capture_content_false_keeps_structure_not_content(data_dir: Path) -> None:
    tracer = traceyard.Tracer(_settings(data_dir, capture_content=False))
    with tracer.generation("llm", input="secret prompt", model="gpt-4o", usage={"input": 5}) as g:
        g.update(output="secret answer")
    tracer.stop()
    store = SQLiteStore(data_dir / DB_FILENAME)
    detail = store.get_trace(g.trace_id)
    assert detail is not None
    obs = detail.observations[0]
    assert obs.input is None and obs.output is None and detail.input is None
    assert obs.model == "gpt-4o" and obs.usage == {"input": 5, "total": 5}
    store.close()
    raw = (data_dir / DB_FILENAME).read_bytes()
    assert b"secret" not in raw


def test_config_precedence_and_errors(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    monkeypatch.setenv("TRACEYARD_PROJECT", "from-env")
    monkeypatch.setenv("TRACEYARD_SAMPLE_RATE", "0.25")
    tracer = traceyard.Tracer.create(data_dir=data_dir, project="from-arg")
    assert tracer.settings.project == "from-arg"  # argument > env
    assert tracer.settings.sample_rate == 0.25  # env > default
    tracer.stop()
    monkeypatch.setenv("TRACEYARD_QUEUE_MAXSIZE", "lots")
    with pytest.raises(ConfigError, match="TRACEYARD_QUEUE_MAXSIZE"):
        traceyard.Tracer.create(data_dir=data_dir)
    monkeypatch.delenv("TRACEYARD_QUEUE_MAXSIZE")
    with pytest.raises(ConfigError, match="argument sample_rate="):
        traceyard.Tracer.create(data_dir=data_dir, sample_rate=3)
    with pytest.raises(ConfigError, match="auth_token"):
        traceyard.Tracer.create(data_dir=data_dir, auth_token="short")


def test_batch_size_suits_where_batches_go(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    """Unset, the batch is short into SQLite and long where each one costs round trips."""
    assert load_settings(data_dir=data_dir).batch_size == 500
    assert load_settings(database_url="postgresql://x@h/db").batch_size == 2_000
    assert load_settings(endpoint="http://central:7842").batch_size == 2_000
    monkeypatch.setenv("TRACEYARD_WORKER_BATCH_SIZE", "64")
    assert load_settings(database_url="postgresql://x@h/db").batch_size == 64
    tracer = traceyard.Tracer.create(data_dir=data_dir, start_server=False)
    assert tracer._queue.batch_size == 64
    tracer.stop()


def _run_python(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC, "TRACEYARD_START_SERVER": "false"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


_WRITER_CHILD = """
    import sys, traceyard
    data_dir, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    tracer = traceyard.Tracer.create(data_dir=data_dir, worker_batch_size=200)
    for i in range(n):
        with tracer.span(f"{tag}-{i}", input={"i": i}):
            tracer.event("e")
        if i % 500 == 499:
            assert tracer.flush(30) == 0
            print(i + 1, flush=True)   # this many roots are durable
    print("lost", tracer.stop(), "dropped", tracer.stats().events_dropped, flush=True)
"""


def test_two_processes_trace_into_one_data_dir(data_dir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": SRC}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(_WRITER_CHILD), str(data_dir), tag, "3000"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("a", "b")
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.strip().endswith("lost 0 dropped 0"), out
        assert "Traceback" not in err, err
    assert _count(data_dir, "traces") == 6000
    assert _count(data_dir, "observations") == 12000
    conn = sqlite3.connect(data_dir / DB_FILENAME)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()


def test_sigkill_while_writing_keeps_a_sound_db_with_every_committed_batch(
    data_dir: Path,
) -> None:
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_WRITER_CHILD), str(data_dir), "k", "1000000"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    durable = 0
    for line in proc.stdout:
        durable = int(line)
        if durable >= 3000:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    conn = sqlite3.connect(data_dir / DB_FILENAME)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    roots = conn.execute("SELECT COUNT(*) FROM traces").fetchone()[0]
    conn.close()
    assert roots >= durable  # everything flushed before the kill is there


def test_atexit_stops_a_tracer_left_running(data_dir: Path) -> None:
    result = _run_python(
        """
        import sys, traceyard
        tracer = traceyard.Tracer.create(data_dir=sys.argv[1], worker_batch_timeout=60)
        for i in range(1000):
            with tracer.span(f"s{i}"):
                pass
        # no stop(): the atexit hook drains the queue
        """,
        str(data_dir),
    )
    assert result.returncode == 0, result.stderr
    assert _count(data_dir, "observations") == 1000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_forked_child_gets_a_working_tracer(data_dir: Path) -> None:
    result = _run_python(
        """
        import os, sys, traceyard
        tracer = traceyard.Tracer.create(data_dir=sys.argv[1])
        with tracer.span("parent-before"):
            pass
        pid = os.fork()
        if pid == 0:
            with tracer.span("child"):
                tracer.event("in-child")
            code = 0 if tracer.stop() == 0 and tracer.stats().events_processed >= 4 else 3
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        with tracer.span("parent-after"):
            pass
        tracer.stop()
        sys.exit(os.waitstatus_to_exitcode(status))
        """,
        str(data_dir),
    )
    assert result.returncode == 0, result.stderr
    store = SQLiteStore(data_dir / DB_FILENAME)
    names = sorted(t.name or "" for t in store.list_traces(TraceQuery()).data)
    store.close()
    assert names == ["child", "parent-after", "parent-before"]


def test_tracer_never_raises_into_the_app(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from traceyard._internal import guard

    monkeypatch.delenv("TRACEYARD_STRICT")  # behave as in a user's app
    tracer = traceyard.Tracer(_settings(data_dir))
    before = guard.internal_errors
    broken = object.__new__(traceyard.ActiveObservation)  # an observation missing its state
    broken.update(output=1)  # must not raise
    broken.end()
    with tracer.span("ok"):
        pass
    assert tracer.stop() == 0
    assert guard.internal_errors == before + 2
    guard.recorded.clear()


def test_events_after_stop_are_counted_not_queued(data_dir: Path) -> None:
    tracer = traceyard.Tracer(_settings(data_dir))
    handler = tracer.handler
    with tracer.span("before"):
        pass
    tracer.stop()
    import uuid

    run_id = uuid.uuid4()
    handler.on_chain_start(None, {"q": 1}, run_id=run_id, name="late")  # a stale handler
    handler.on_chain_end({"a": 1}, run_id=run_id)
    stats = tracer.stats()
    assert stats.queue_depth == 0
    # the late root run: its trace attributes, its start, its end and its trace output
    assert stats.events_processed == 3 and stats.events_dropped == 4


def test_a_trace_that_lost_every_event_leaves_no_empty_row(data_dir: Path) -> None:
    store = GatedStore(data_dir / DB_FILENAME)
    tracer = traceyard.Tracer(
        _settings(data_dir, queue_maxsize=5, worker_batch_size=3), store_factory=lambda: store
    )
    with tracer.span("kept-first"):  # 3 events: the writer takes them, then blocks
        pass
    assert store.entered.wait(10)
    with tracer.span("fills-the-queue") as partial:  # its trace attributes and start: queued
        tracer.event("overflow-1")  # queued
        tracer.event("overflow-2")  # queued
        tracer.event("overflow-3")  # queued: the queue (5) is full now
    # ...so this span's end is dropped: the trace keeps some events and loses one
    with tracer.span("lost-whole"):  # all 3 events dropped
        pass
    store.gate.set()
    assert tracer.stop(10) == 0
    check = SQLiteStore(data_dir / DB_FILENAME)
    traces = {t.id: t for t in check.list_traces(TraceQuery()).data}
    check.close()
    assert len(traces) == 2  # no row for the trace that lost everything
    assert traces[partial.trace_id].status is TraceStatus.INCOMPLETE
    assert all(t.observation_count > 0 for t in traces.values())
    stats = tracer.stats()
    assert stats.events_dropped >= 3 + 1

"""Writer ceiling: LangChain-shaped events offered as fast as the writer takes them.

Each observation is a start and an end event (as the LangChain handler emits them), 20% with
a 20 KB input; traces of 10 observations. A producer thread offers events for ``--seconds``,
backing off only while ``--backlog`` events wait in the queue (default: 4 batches, so the
writer never waits for work and nothing is dropped); the figure is events made durable per
second. In the same run, the raw limit: plain ``sqlite3`` ``executemany`` of the same final
rows (inputs inline, uncompressed) into the same schema, in batches of the same size, and our
ratio to it.

Python's full garbage collection (generation 2) walks every object in the process, the
queued events included, and holds the GIL meanwhile: the run prints its pauses beside the
batch latencies. ``--backlog 90000`` keeps the queue 90% full instead, and shows what a
deep backlog costs in those pauses (bench/README.md).

    uv run python bench/writer_ceiling.py --seconds 30 [--backlog 90000] [--dir /dev/shm]
"""

from __future__ import annotations

import argparse
import gc
import random
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _workload import big_inputs, observation_events

import traceyard
from traceyard.capture.context import RunState
from traceyard.model import Entity, Event
from traceyard.store.sqlite import DB_FILENAME, SQLiteStore


class Workload:
    """Builds the events of one trace at a time from precomputed templates.

    The templates (their payloads, types, 20% big inputs) come from ``_workload``; each trace
    takes the next template's field dicts with ids of its own. The field dicts are shared, not
    copied: the writer never changes an event's fields, and building them afresh for every
    event cost the producer thread 4 µs an event, GIL time taken from the writer it measures.
    """

    TEMPLATES = 1024

    def __init__(self, seed: int = 7) -> None:
        rng = random.Random(seed)
        inputs = big_inputs(rng)
        self.templates = [
            [
                (start.fields, end.fields)
                for start, end in observation_events(rng, inputs, "", "", "")
            ]
            for _ in range(self.TEMPLATES)
        ]
        self.n = 0

    def trace_events(self, project: str) -> list[Event]:
        self.n += 1
        trace_id = f"{self.n:032x}"
        prefix = f"{self.n:012x}"
        events = []
        parent = None
        for i, (start, end) in enumerate(self.templates[self.n % self.TEMPLATES]):
            obs_id = f"{prefix}{i:04x}"
            # the template's parent ids are its own: only the first observation's id matters
            events.append(
                Event(Entity.OBSERVATION, obs_id, trace_id, project, {**start, "parent_id": parent})
            )
            events.append(Event(Entity.OBSERVATION, obs_id, trace_id, project, end))
            parent = parent or obs_id
        return events


class GcPauses:
    """Wall time of each full (generation 2) collection while installed."""

    def __init__(self) -> None:
        self.pauses_ms: list[float] = []
        self._started = 0.0

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses_ms.append((time.perf_counter() - self._started) * 1000)

    def summary(self) -> str:
        pauses = sorted(self.pauses_ms)
        if not pauses:
            return "no full GC"
        return (
            f"{len(pauses)} full GCs, median {pauses[len(pauses) // 2]:.1f} ms, "
            f"max {pauses[-1]:.1f} ms, {sum(pauses) / 1000:.1f} s in all"
        )


def run_pipeline(
    seconds: float, where: str | None, backlog: int | None = None
) -> tuple[float, Any, int]:
    workload = Workload()
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        tracer = traceyard.Tracer.create(data_dir=tmp, start_server=False)
        queue = tracer._queue
        limit = min(backlog or 4 * queue.batch_size, int(queue.maxsize * 0.9))
        stop = threading.Event()
        offered = 0

        def produce() -> None:
            nonlocal offered
            run = RunState("", tracer.project, True)
            while not stop.is_set():
                if len(queue) > limit:
                    time.sleep(0.001)
                    continue
                for event in workload.trace_events(tracer.project):
                    run.events = 0
                    tracer.emit(run, event)
                    offered += 1

        producer = threading.Thread(target=produce)
        started = time.perf_counter()
        processed_at_start = tracer.stats().events_processed
        producer.start()
        time.sleep(seconds)
        processed = tracer.stats().events_processed - processed_at_start
        elapsed = time.perf_counter() - started
        stop.set()
        producer.join()
        tracer.stop()
        stats = tracer.stats()
        store = SQLiteStore(Path(tmp) / DB_FILENAME)
        stored = store.counts().observations
        store.close()
    assert stats.events_dropped == 0, stats
    assert stored * 2 == offered, (stored, offered)
    return processed / elapsed, stats, offered


def run_raw(seconds: float, batch_size: int, where: str | None) -> float:
    """Plain executemany of the final rows (one per observation) into the same schema."""
    workload = Workload()
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        SQLiteStore(Path(tmp) / DB_FILENAME).close()  # create the schema
        conn = sqlite3.connect(Path(tmp) / DB_FILENAME, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        import json

        batches = []  # built before timing: only the inserts are measured
        for _ in range(max(1, int(seconds * 25))):
            rows = []
            traces = []
            while len(rows) * 2 < batch_size:
                events = workload.trace_events("default")
                traces.append((events[0].trace_id, "default"))
                for start, end in zip(events[::2], events[1::2], strict=True):
                    f = {**start.fields, **end.fields}
                    rows.append(
                        (
                            start.id,
                            start.trace_id,
                            f["parent_id"],
                            f["type"].value,
                            f["name"],
                            f["start_time"],
                            f["end_time"],
                            json.dumps(f["input"]),
                            json.dumps(f["output"]),
                            json.dumps(f["metadata"]),
                            f.get("model"),
                            json.dumps(f.get("usage")) if f.get("usage") else None,
                        )
                    )
            batches.append((traces, rows))
        rows_done = 0
        started = time.perf_counter()
        for traces, rows in batches:
            if time.perf_counter() - started > seconds:
                break
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO traces (id, project) VALUES (?, ?)", traces)
            conn.executemany(
                "INSERT INTO observations (id, trace_id, parent_id, type, name, start_time, "
                "end_time, input, output, metadata, model, usage) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.execute("COMMIT")
            rows_done += len(rows)
        elapsed = time.perf_counter() - started
        conn.close()
    return rows_done * 2 / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument(
        "--dir",
        default=None,
        help="where the databases go (default: the system temp dir); "
        "/dev/shm takes the disk out of the measurement",
    )
    parser.add_argument(
        "--backlog",
        type=int,
        default=None,
        help="events kept waiting in the queue (default: 4 batches; at most 90%% of it)",
    )
    args = parser.parse_args()
    print(f"databases in {args.dir or tempfile.gettempdir()}")
    with GcPauses() as gc_pauses:
        ours, stats, offered = run_pipeline(args.seconds, args.dir, args.backlog)
    raw = run_raw(min(args.seconds, 15.0), traceyard.Settings().batch_size, args.dir)
    print(
        f"pipeline: {ours:,.0f} events/s durable (target >= 50,000), "
        f"p99 batch write {stats.p99_write_latency_ms:.1f} ms (target <= 50; preparing "
        f"the batch before it, p99 {stats.p99_prepare_latency_ms:.1f} ms), "
        f"{stats.batches_written} batches of <= {traceyard.Settings().batch_size}, "
        f"dropped {stats.events_dropped}, "
        f"offered {offered:,} all stored"
    )
    print(f"garbage collection during it: {gc_pauses.summary()}")
    print(f"raw sqlite3 executemany of the same rows: {raw:,.0f} events/s")
    print(f"ratio: {ours / raw:.2f} (target >= 0.5)")


if __name__ == "__main__":
    main()

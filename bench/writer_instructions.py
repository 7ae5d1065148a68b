"""CPU instructions the SQLite writer spends per LangChain event, counted by callgrind.

Timings on these shared 2-core machines move by 50% with the load; instruction counts do not
(valgrind counts the same total for the same code and input whatever else runs). This runs
the benchmark chain with our handler into a capturing sink, then writes the captured events
through ``SQLiteStore.write`` in batches of varying size (as the writer sees them), once
under callgrind with the writes and once without; the difference divided by the events
written is the figure.

    uv run python bench/writer_instructions.py            # needs valgrind (Debian: valgrind)
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

BATCH_SIZES = (37, 61, 24, 90, 48, 13, 75)  # events per write: the writer's batches vary
WARMUP_INVOKES = 5


def workload(invokes: int, write: bool) -> int:
    """Capture ``invokes`` traced invokes, then write them (or not); events written."""
    from _chain import CapturingSink, build_chain

    import traceyard
    from traceyard.model import Event
    from traceyard.store.sqlite import SQLiteStore

    sink = CapturingSink()
    captured: list[Event] = sink.events

    chain = build_chain()
    data_dir = tempfile.mkdtemp(prefix="traceyard-instr-")
    settings = traceyard.Settings(data_dir=data_dir, start_server=False)
    tracer = traceyard.Tracer(settings, store_factory=lambda: sink)
    for _ in range(invokes + WARMUP_INVOKES):
        chain.invoke({"q": "x"}, config={"callbacks": [tracer.handler]})
    tracer.stop()
    per_invoke = len(captured) // (invokes + WARMUP_INVOKES)
    warm, rest = captured[: WARMUP_INVOKES * per_invoke], captured[WARMUP_INVOKES * per_invoke :]
    store = SQLiteStore(Path(data_dir) / "bench.db")
    store.write(warm)  # schema, statement cache, first inserts: not counted
    if write:
        start = k = 0
        while start < len(rest):
            size = BATCH_SIZES[k % len(BATCH_SIZES)]
            store.write(rest[start : start + size])
            start, k = start + size, k + 1
    store.close()
    return len(rest)


def instructions(invokes: int, write: bool) -> tuple[int, int]:
    """(instructions of the whole run, events written) under callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out",
            sys.executable, __file__, "--child", str(invokes), "--write" if write else "--no-write",
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=True)
    collected = re.search(r"Collected : ([\d,]+)", result.stderr)
    events = re.search(r"events (\d+)", result.stdout)
    assert collected and events, result.stderr[-2000:]
    return int(collected.group(1).replace(",", "")), int(events.group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--invokes", type=int, default=100)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    if args.child is not None:
        print(f"events {workload(args.child, args.write)}")
        return
    with_writes, events = instructions(args.invokes, write=True)
    without, _ = instructions(args.invokes, write=False)
    per_event = (with_writes - without) / events
    versions = f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}"
    sizes = f"{min(BATCH_SIZES)}-{max(BATCH_SIZES)}"
    print(f"SQLiteStore.write: {per_event:,.0f} instructions per LangChain event "
          f"({events:,} events in batches of {sizes}; {versions})")  # fmt: skip


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    os.environ.setdefault("TRACEYARD_START_SERVER", "false")
    main()

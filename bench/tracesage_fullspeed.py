"""Full-speed LangChain against the peer tracesage 0.3.1: the chain of bench/_chain.py invoked as
fast as possible, traced (tracesage's callback handler) and untraced interleaved in the same run,
exactly as bench/langchain_fullspeed.py measures traceyard.

tracesage pins langchain-core<1.5, so this script runs in its own virtualenv, not in ours;
bench/compare_tracesage.py creates that venv and runs this script for each mode. It imports
nothing from traceyard and prints ONE JSON line (the keys are the ones the comparison reads).

tracesage is used the way its README and tracer.py say: in sync code ``tracesage.start(config,
start_server=False)`` (a ``BackgroundTracer``: its own loop on a daemon thread) and
``.stop()``; in async code ``await TraceSage.create(config, start_server=False)`` on the app's
loop and ``await tracer.stop()``. The embedded UI server is off (fair: ours is off too), the
SQLite file (``<data_dir>/traces.db``) and the blob files live in a temp dir, and after stop()
we count the rows of its ``events`` table (one row per event it emitted).

    .cache/tracesage-venv/bin/python bench/tracesage_fullspeed.py --seconds 60 --mode sync
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import tracesage  # type: ignore[import-not-found, unused-ignore]
from _chain import build_chain
from tracesage import TraceSage, TraceSageConfig

BLOCK_S = 1.0  # seconds per block; blocks alternate untraced / traced (as langchain_fullspeed.py)
QUESTION = {"q": "What is the capital of France?"}
# Their async stop() has no timeout of its own (5 s queue drain, then the whole rest of the
# queue as one batch); bound it so the benchmark always ends, and report when the bound is hit.
ASYNC_STOP_BOUND_S = 300.0


def _config(data_dir: str) -> Any:
    # Explicit kwargs win over any TRACESAGE_* variable set on this machine.
    return TraceSageConfig(
        data_dir=Path(data_dir), start_server=False, print_run_url=False, enabled=True
    )


def _count_events(db_path: Path) -> int:
    conn = sqlite3.connect(db_path)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    finally:
        conn.close()


def _median_block_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _timing(traced: list[float], untraced: list[float], invokes: int) -> dict[str, float]:
    return {
        "traced_ms": _median_block_ms(traced),
        "untraced_ms": _median_block_ms(untraced),
        "traced_invokes": invokes,
    }


def run_sync(chain: Any, handler: Any, seconds: float) -> dict[str, float]:
    config = {"callbacks": [handler]}
    traced: list[float] = []
    untraced: list[float] = []
    invokes = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for cfg, samples in (({}, untraced), (config, traced)):
            start, n = time.perf_counter(), 0
            while (elapsed := time.perf_counter() - start) < BLOCK_S:
                chain.invoke(QUESTION, config=cfg)
                n += 1
            samples.append(elapsed / n)
        invokes += n  # the traced block's: it runs second
    return _timing(traced, untraced, invokes)


async def run_async(chain: Any, handler: Any, seconds: float) -> dict[str, float]:
    config = {"callbacks": [handler]}
    traced: list[float] = []
    untraced: list[float] = []
    invokes = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for cfg, samples in (({}, untraced), (config, traced)):
            start, n = time.perf_counter(), 0
            while (elapsed := time.perf_counter() - start) < BLOCK_S:
                await chain.ainvoke(QUESTION, config=cfg)
                n += 1
            samples.append(elapsed / n)
        invokes += n  # the traced block's: it runs second
    return _timing(traced, untraced, invokes)


def _result(
    mode: str,
    timing: dict[str, float],
    per_invoke: int,
    stats: Any,
    persisted_before_stop: int,
    run_s: float,
    stop_s: float,
    persisted: int,
    note: str,
) -> dict[str, Any]:
    invokes = int(timing["traced_invokes"]) + 1  # + the counting invoke
    # The chain is deterministic: every traced invoke emits the same events. tracesage counts
    # no "emitted" itself (events still queued at the end appear in none of its counters).
    emitted = invokes * per_invoke
    dropped = int(stats.events_dropped)
    return {
        "tracer": "tracesage",
        "version": tracesage.__version__,
        "mode": mode,
        "untraced_ms": timing["untraced_ms"],
        "traced_ms": timing["traced_ms"],
        "ratio": timing["traced_ms"] / timing["untraced_ms"],
        "invokes": invokes,
        "events_per_invoke": per_invoke,
        "emitted": emitted,
        "dropped": dropped,
        "persisted_before_stop": persisted_before_stop,
        "run_s": run_s,
        "persisted": persisted,
        # accepted into its queue but not in the store after stop()
        "lost_at_stop": emitted - dropped - persisted,
        "stop_s": stop_s,
        "p99_write_ms": stats.p99_write_latency_ms,
        "note": note,
    }


def measure_sync(seconds: float) -> dict[str, Any]:
    chain = build_chain()
    with tempfile.TemporaryDirectory() as tmp:
        config = _config(tmp)
        background = tracesage.start(config, start_server=False)
        chain.invoke({"q": "count"}, config={"callbacks": [background.handler]})
        background.flush(timeout=30.0)
        per_invoke = _count_events(config.db_path)
        start = time.perf_counter()
        timing = run_sync(chain, background.handler, seconds)
        run_s = time.perf_counter() - start
        stats = background.tracer.stats.model_copy()
        persisted_before_stop = _count_events(config.db_path)
        start = time.perf_counter()
        background.stop()  # its default: 10 s for the stop coroutine, then the loop is stopped
        stop_s = time.perf_counter() - start
        thread = background._thread  # to say honestly whether its writer was still running
        note = "writer thread still alive after stop()" if thread and thread.is_alive() else ""
        persisted = _count_events(config.db_path)
        return _result(
            "sync",
            timing,
            per_invoke,
            stats,
            persisted_before_stop,
            run_s,
            stop_s,
            persisted,
            note,
        )


async def _measure_async(seconds: float, tmp: str) -> dict[str, Any]:
    chain = build_chain()
    config = _config(tmp)
    tracer = await TraceSage.create(config, start_server=False)
    await chain.ainvoke({"q": "count"}, config={"callbacks": [tracer.handler]})
    await tracer.flush(timeout=30.0)
    per_invoke = _count_events(config.db_path)
    start = time.perf_counter()
    timing = await run_async(chain, tracer.handler, seconds)
    run_s = time.perf_counter() - start
    stats = tracer.stats.model_copy()
    persisted_before_stop = _count_events(config.db_path)
    note = ""
    start = time.perf_counter()
    try:
        await asyncio.wait_for(tracer.stop(), timeout=ASYNC_STOP_BOUND_S)
    except TimeoutError:
        note = f"stop() still running after {ASYNC_STOP_BOUND_S:.0f} s; cancelled"
    stop_s = time.perf_counter() - start
    persisted = _count_events(config.db_path)
    return _result(
        "async",
        timing,
        per_invoke,
        stats,
        persisted_before_stop,
        run_s,
        stop_s,
        persisted,
        note,
    )


def measure_async(seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(_measure_async(seconds, tmp))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--mode", choices=["sync", "async"], required=True)
    args = parser.parse_args()
    measure = measure_sync if args.mode == "sync" else measure_async
    print(json.dumps(measure(args.seconds)), flush=True)


if __name__ == "__main__":
    main()

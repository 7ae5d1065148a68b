"""Full-speed LangChain: the benchmark chain invoked as fast as possible, traced and untraced
interleaved in the same run, sync and async.

Prints the invoke time with and without the tracer, their ratio (target ≤ 1.15), the events
emitted, dropped (target 0) and persisted by the end of stop() (target: all).

Blocks of ``BLOCK_S`` seconds alternate untraced and traced; each block's figure is its mean
invoke time, the result the median over blocks. A block must be long beside the writer's lag:
the writer handles a batch tens of milliseconds after its events were emitted, and with short
blocks (20 invokes, ~50 ms, this script's first version) that work fell into the next block,
an untraced one half of the time, or into a few blocks that the median then left out.

    uv run python bench/langchain_fullspeed.py --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _chain import build_chain

import traceyard
from traceyard.store.sqlite import DB_FILENAME

BLOCK_S = 1.0  # seconds per block; blocks alternate untraced / traced


def _median_block_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def run_sync(chain: Any, tracer: traceyard.Tracer, seconds: float) -> dict[str, float]:
    config = {"callbacks": [tracer.handler]}
    traced: list[float] = []
    untraced: list[float] = []
    invokes = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for cfg, samples in (({}, untraced), (config, traced)):
            start, n = time.perf_counter(), 0
            while (elapsed := time.perf_counter() - start) < BLOCK_S:
                chain.invoke({"q": "What is the capital of France?"}, config=cfg)
                n += 1
            samples.append(elapsed / n)
        invokes += n  # the traced block's: it runs second
    return {
        "traced_ms": _median_block_ms(traced),
        "untraced_ms": _median_block_ms(untraced),
        "traced_invokes": invokes,
    }


def run_async(chain: Any, tracer: traceyard.Tracer, seconds: float) -> dict[str, float]:
    config = {"callbacks": [tracer.handler]}

    async def main() -> dict[str, float]:
        traced: list[float] = []
        untraced: list[float] = []
        invokes = 0
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            for cfg, samples in (({}, untraced), (config, traced)):
                start, n = time.perf_counter(), 0
                while (elapsed := time.perf_counter() - start) < BLOCK_S:
                    await chain.ainvoke({"q": "What is the capital of France?"}, config=cfg)
                    n += 1
                samples.append(elapsed / n)
            invokes += n  # the traced block's: it runs second
        return {
            "traced_ms": _median_block_ms(traced),
            "untraced_ms": _median_block_ms(untraced),
            "traced_invokes": invokes,
        }

    return asyncio.run(main())


def events_per_invoke(chain: Any, tracer: traceyard.Tracer) -> int:
    before = tracer.stats()
    chain.invoke({"q": "count"}, config={"callbacks": [tracer.handler]})
    tracer.flush()
    after = tracer.stats()
    return after.events_processed - before.events_processed


def measure(mode: str, runner: Callable[..., dict[str, float]], seconds: float) -> dict[str, Any]:
    """Run one mode, print its line and return its figures (bench/compare_tracesage.py reads
    them; the keys match bench/tracesage_fullspeed.py's JSON)."""
    chain = build_chain()
    with tempfile.TemporaryDirectory() as tmp:
        tracer = traceyard.Tracer.create(data_dir=tmp, start_server=False)
        per_invoke = events_per_invoke(chain, tracer)
        start = time.perf_counter()
        result = runner(chain, tracer, seconds)
        run_s = time.perf_counter() - start
        persisted_before_stop = tracer.stats().events_processed
        start = time.perf_counter()
        lost = tracer.stop()
        stop_s = time.perf_counter() - start
        stats = tracer.stats()
        conn = sqlite3.connect(Path(tmp) / DB_FILENAME)
        observations = conn.execute("SELECT COUNT(*) FROM observations").fetchone()[0]
        conn.close()
    invokes = int(result["traced_invokes"]) + 1
    emitted = stats.events_processed + stats.events_dropped + stats.events_sampled_out
    # per invoke: a start and an end per observation, plus the trace's input and output
    expected_obs = invokes * (per_invoke - 2) // 2
    ratio = result["traced_ms"] / result["untraced_ms"]
    print(
        f"{mode:5s} invoke untraced {result['untraced_ms']:.3f} ms, traced "
        f"{result['traced_ms']:.3f} ms, ratio {ratio:.3f} (target <= 1.15) | "
        f"{invokes} traced invokes, {per_invoke} events each, emitted {emitted}, "
        f"dropped {stats.events_dropped}, lost at stop {lost}, "
        f"observations stored {observations}/{expected_obs}, "
        f"p99 batch write {stats.p99_write_latency_ms:.1f} ms"
    )
    return {
        "tracer": "traceyard",
        "version": traceyard.__version__,
        "mode": mode,
        "untraced_ms": result["untraced_ms"],
        "traced_ms": result["traced_ms"],
        "ratio": ratio,
        "invokes": invokes,
        "events_per_invoke": per_invoke,
        "emitted": emitted,
        "dropped": stats.events_dropped,
        "persisted_before_stop": persisted_before_stop,
        "run_s": run_s,
        "persisted": stats.events_processed,  # counted after commit
        "lost_at_stop": lost,
        "stop_s": stop_s,
        "p99_write_ms": stats.p99_write_latency_ms,
        "observations_stored": observations,
        "observations_expected": expected_obs,
        "note": "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    measure("sync", run_sync, args.seconds)
    measure("async", run_async, args.seconds)


if __name__ == "__main__":
    main()

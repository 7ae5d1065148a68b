"""App-thread cost: what one event costs the code being traced.

1. Direct API: microseconds per event of ``tracer.span()`` / ``tracer.event()`` on the app
   thread (target ≤ 5 µs), with the writer draining concurrently, against the same loop
   without a tracer.
2. Disabled tracer with the install pattern (``Tracer.create(enabled=False).install()``):
   the benchmark chain's invoke time against no tracer at all, interleaved (target: ratio 1.00
   within noise).

    uv run python bench/app_thread_cost.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable

from _chain import build_chain

import traceyard

N_SPANS = 20_000
ROUNDS = 5


def _per_call_us(fn: Callable[[], None], n: int, clock: Callable[[], float]) -> float:
    start = clock()
    for _ in range(n):
        fn()
    return (clock() - start) / n * 1e6


def direct_api() -> None:
    """CPU time of the app thread per event (what our code costs it; immune to other load)
    and wall time per event while the writer drains concurrently (adds the GIL it shares)."""
    with tempfile.TemporaryDirectory() as tmp:
        # one long root run here: lift the per-run cap so every event is really queued
        tracer = traceyard.Tracer.create(
            data_dir=tmp, start_server=False, per_run_event_cap=10**9, queue_maxsize=10**7
        )

        def span() -> None:
            with tracer.span("child", input=1):
                pass

        def event() -> None:
            tracer.event("tick", input=1)

        results: dict[str, list[float]] = {"span_cpu": [], "event_cpu": [], "span_wall": []}
        for _ in range(ROUNDS):
            with tracer.span("root"):
                results["span_cpu"].append(_per_call_us(span, N_SPANS, time.thread_time) / 2)
                results["event_cpu"].append(_per_call_us(event, N_SPANS, time.thread_time))
                results["span_wall"].append(_per_call_us(span, N_SPANS, time.perf_counter) / 2)
            tracer.flush(None)
        lost = tracer.stop()
        stats = tracer.stats()
    m = {k: statistics.median(v) for k, v in results.items()}
    print(
        f"direct API, per event on the app thread (target <= 5 µs): span start/end "
        f"{m['span_cpu']:.2f} µs CPU, event() {m['event_cpu']:.2f} µs CPU; with the writer "
        f"draining concurrently {m['span_wall']:.2f} µs wall | {stats.events_processed:,} events "
        f"written, dropped {stats.events_dropped}, lost at stop {lost}"
    )


def disabled_install() -> None:
    """The disabled tracer installed vs no tracer, alternating which goes first each round so
    neither always runs on a warmer cache."""
    chain = build_chain()
    tracer = traceyard.Tracer.create(enabled=False)
    samples: dict[bool, list[float]] = {False: [], True: []}
    for round_ in range(60):
        for installed in (False, True) if round_ % 2 == 0 else (True, False):
            if installed:
                tracer.install()
            start = time.perf_counter()
            for _ in range(10):
                chain.invoke({"q": "hello"})
            samples[installed].append((time.perf_counter() - start) / 10)
            tracer.uninstall()
    a, b = statistics.median(samples[False]), statistics.median(samples[True])
    print(
        f"disabled tracer, install pattern: invoke {b * 1e3:.3f} ms vs no tracer "
        f"{a * 1e3:.3f} ms, ratio {b / a:.3f} (target: 1.00 within noise)"
    )


if __name__ == "__main__":
    direct_api()
    disabled_install()

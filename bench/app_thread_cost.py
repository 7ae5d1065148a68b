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

from _chain import build_chain

import traceyard

N_SPANS = 50_000
ROUNDS = 5


def direct_api() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        # one long root run here: lift the per-run cap so every event is really queued
        tracer = traceyard.Tracer.create(data_dir=tmp, start_server=False, per_run_event_cap=10**9)
        per_event_span: list[float] = []
        per_event_event: list[float] = []
        baseline: list[float] = []
        for _ in range(ROUNDS):
            start = time.perf_counter()
            for i in range(N_SPANS):
                pass
            baseline.append((time.perf_counter() - start) / N_SPANS)
            with tracer.span("root"):
                start = time.perf_counter()
                for i in range(N_SPANS):
                    with tracer.span("child", input=i):
                        pass
                per_event_span.append((time.perf_counter() - start) / (2 * N_SPANS))
                start = time.perf_counter()
                for i in range(N_SPANS):
                    tracer.event("tick", input=i)
                per_event_event.append((time.perf_counter() - start) / N_SPANS)
            tracer.flush()
        lost = tracer.stop()
        stats = tracer.stats()
    base = statistics.median(baseline)
    span_us = (statistics.median(per_event_span) - base / 2) * 1e6
    event_us = (statistics.median(per_event_event) - base) * 1e6
    print(
        f"direct API, per event on the app thread: span start/end {span_us:.2f} µs, "
        f"event {event_us:.2f} µs (target <= 5 µs) | {stats.events_processed:,} events "
        f"written, dropped {stats.events_dropped}, lost at stop {lost}"
    )


def disabled_install() -> None:
    chain = build_chain()
    tracer = traceyard.Tracer.create(enabled=False)
    untraced: list[float] = []
    disabled: list[float] = []
    for _ in range(30):
        for installed, samples in ((False, untraced), (True, disabled)):
            if installed:
                tracer.install()
            start = time.perf_counter()
            for _ in range(20):
                chain.invoke({"q": "hello"})
            samples.append((time.perf_counter() - start) / 20)
            tracer.uninstall()
    a, b = statistics.median(untraced), statistics.median(disabled)
    print(
        f"disabled tracer, install pattern: invoke {b * 1e3:.3f} ms vs no tracer "
        f"{a * 1e3:.3f} ms, ratio {b / a:.3f} (target: 1.00 within noise)"
    )


if __name__ == "__main__":
    direct_api()
    disabled_install()

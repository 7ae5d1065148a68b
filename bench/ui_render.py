"""Time to first render of the UI on big data, in Debian's Chromium against the real server.

    uv run python bench/ui_render.py [--traces 200000] [--observations 5000] [--runs 7]

Builds two SQLite stores through ``SQLiteStore.write`` (big event batches): a big one
(``--traces`` traces of two observations each, plus one trace of ``--observations``
observations) and a baseline of 200 traces plus a 10-observation trace, serves each with the
real traceyard app on 127.0.0.1, and measures in the browser, from navigation start:

* list: until the first row of the traces table is in the DOM;
* trace: until the first row of the observation tree is in the DOM;

plus the API time of the request behind each (Resource Timing). Prints medians over ``--runs``
page loads (each in a fresh browser context; the first load, with a cold HTTP cache, is
reported apart) and the big/baseline ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from playwright.sync_api import Browser, sync_playwright

from traceyard.config import load_settings
from traceyard.model import Entity, Event
from traceyard.server.app import create_app
from traceyard.server.embedded import bind_socket, uvicorn_config
from traceyard.server.state import ServerState
from traceyard.store.sqlite import SQLiteStore

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
MS = 1_000_000
BATCH = 20_000  # events per store.write: one transaction each

# Records when the first list row / tree row enters the DOM (ms since navigation start).
FIRST_ROW_PROBE = """
(() => {
  const seen = {};
  const check = () => {
    const now = performance.now();
    if (!seen.list && document.querySelector('.traces-table tbody tr')) seen.list = now;
    if (!seen.tree && document.querySelector('.tree-row')) seen.tree = now;
  };
  new MutationObserver(check).observe(document, {childList: true, subtree: true});
  window.__firstRow = seen;
})();
"""


def build_store(path: Path, traces: int, big_trace_observations: int) -> str:
    """Fill a store; returns the id of its big trace."""
    store = SQLiteStore(path)
    now = time.time_ns()
    events: list[Event] = []
    names = ["rag-pipeline", "support-agent", "summarize", "classify", "translate"]
    models = ["gpt-4o-mini", "gpt-4o", "claude-3-5-haiku"]
    started = time.perf_counter()
    for i in range(traces):
        trace_id = f"t{i:09d}"
        start = now - i * 3_000 * MS  # one trace every 3 s, newest first
        name = names[i % len(names)]
        events.append(
            Event(
                Entity.TRACE,
                trace_id,
                trace_id,
                "default",
                {
                    "name": name,
                    "user_id": f"user-{i % 500}",
                    "session_id": f"s-{i // 4}",
                    "tags": ["prod"] if i % 3 else ["batch"],
                    "input": f"question {i}",
                    "output": f"answer {i}",
                    "metadata": {"tier": "gold" if i % 7 else "free"},
                },
            )
        )
        root = f"{trace_id}-r"
        events.append(
            Event(
                Entity.OBSERVATION,
                root,
                trace_id,
                "default",
                {
                    "type": "chain",
                    "name": name,
                    "start_time": start,
                    "end_time": start + (200 + i % 3000) * MS,
                },
            )
        )
        events.append(
            Event(
                Entity.OBSERVATION,
                f"{trace_id}-g",
                trace_id,
                "default",
                {
                    "parent_id": root,
                    "type": "generation",
                    "name": "llm",
                    "start_time": start + 10 * MS,
                    "end_time": start + (150 + i % 2500) * MS,
                    "model": models[i % 3],
                    "usage": {"input": 300 + i % 900, "output": 40 + i % 200},
                },
            )
        )
        if len(events) >= BATCH:
            store.write(events)
            events = []
    big_id = "big-trace"
    start = now - 60_000 * MS
    events.append(Event(Entity.TRACE, big_id, big_id, "default", {"name": "big-agent-run"}))
    events.append(
        Event(
            Entity.OBSERVATION,
            "big-root",
            big_id,
            "default",
            {
                "type": "agent",
                "name": "big-agent-run",
                "start_time": start,
                "end_time": start + 50_000 * MS,
            },
        )
    )
    made, step = 1, 0
    while made < big_trace_observations:
        step_id = f"big-step-{step}"
        step_start = start + step * 900 * MS
        events.append(
            Event(
                Entity.OBSERVATION,
                step_id,
                big_id,
                "default",
                {
                    "parent_id": "big-root",
                    "type": "chain",
                    "name": f"step-{step}",
                    "start_time": step_start,
                    "end_time": step_start + 850 * MS,
                },
            )
        )
        made += 1
        for j in range(min(24, big_trace_observations - made)):
            events.append(
                Event(
                    Entity.OBSERVATION,
                    f"big-{step}-{j}",
                    big_id,
                    "default",
                    {
                        "parent_id": step_id,
                        "type": "generation" if j % 2 else "tool",
                        "name": f"call-{step}-{j}",
                        "start_time": step_start + j * 30 * MS,
                        "end_time": step_start + (j * 30 + 25) * MS,
                    },
                )
            )
            made += 1
        step += 1
    store.write(events)
    counts = store.counts()
    store.close()
    print(
        f"  built {path.parent.name}: {counts.traces:,} traces, {counts.observations:,} "
        f"observations, {counts.size_bytes / 1e6:.0f} MB in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    return big_id


class Server:
    """The real app on a loopback port, in a thread."""

    def __init__(self, data_dir: Path) -> None:
        settings = load_settings(data_dir=data_dir, start_server=False)
        self.store = SQLiteStore(data_dir / "traceyard.db")
        self.state = ServerState(store=self.store, settings=settings)
        sock = bind_socket("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
        self.server = uvicorn.Server(uvicorn_config(create_app(self.state)))
        self.thread = threading.Thread(
            target=lambda: asyncio.run(self.server.serve(sockets=[sock])), daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.store.close()


def measure(browser: Browser, url: str, key: str, api_part: str, runs: int) -> dict[str, Any]:
    """Page loads of ``url``: ms to the first row (``key``) and of the API request."""
    renders: list[float] = []
    apis: list[float] = []
    after: list[float] = []
    for _ in range(runs):
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        context.add_init_script(FIRST_ROW_PROBE)
        page = context.new_page()
        page.goto(url)
        page.wait_for_function(
            f"() => window.__firstRow && window.__firstRow.{key}", timeout=60_000
        )
        renders.append(page.evaluate(f"() => window.__firstRow.{key}"))
        timing = page.evaluate(
            """(part) => performance.getEntriesByType('resource')
                 .filter(e => e.name.includes(part))
                 .map(e => [e.duration, e.responseEnd])[0] ?? null""",
            api_part,
        )
        api_ms, response_end = timing if timing else (float("nan"), float("nan"))
        apis.append(api_ms)
        after.append(renders[-1] - response_end)  # parse + build the DOM, in the page
        context.close()
    warm = renders[1:] or renders
    return {
        "cold": renders[0],
        "median": statistics.median(warm),
        "min": min(warm),
        "api_median": statistics.median(apis[1:] or apis),
        "after_median": statistics.median(after[1:] or after),
    }


def run_case(browser: Browser, data_dir: Path, big_id: str, runs: int) -> dict[str, Any]:
    server = Server(data_dir)
    try:
        return {
            "list": measure(browser, server.url + "#/traces", "list", "api/traces?", runs),
            "trace": measure(
                browser, server.url + f"#/traces/{big_id}", "tree", f"api/traces/{big_id}", runs
            ),
        }
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--traces", type=int, default=200_000)
    parser.add_argument("--observations", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    os.environ.setdefault("TRACEYARD_START_SERVER", "false")

    with tempfile.TemporaryDirectory(prefix="traceyard-ui-bench-") as tmp:
        base_dir, big_dir = Path(tmp) / "baseline", Path(tmp) / "big"
        print("building stores...", flush=True)
        base_id = build_store(base_dir / "traceyard.db", 200, 10)
        big_id = build_store(big_dir / "traceyard.db", args.traces, args.observations)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
            )
            base = run_case(browser, base_dir, base_id, args.runs)
            big = run_case(browser, big_dir, big_id, args.runs)
            browser.close()

    def line(label: str, b: dict[str, Any], x: dict[str, Any]) -> str:
        return (
            f"{label:<34} {x['median']:>6.0f} ms (min {x['min']:>4.0f}, cold {x['cold']:>4.0f}) "
            f"API {x['api_median']:>5.0f} ms  render {x['after_median']:>4.0f} ms | baseline "
            f"{b['median']:>5.0f} ms (API {b['api_median']:>3.0f}, render "
            f"{b['after_median']:>3.0f}) | ratio {x['median'] / b['median']:.2f}x"
        )

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nfirst render, median of {args.runs - 1} warm page loads (Chromium headless):")
    print("  (total: navigation start → first row; API: the request behind it;")
    print("   render: API response end → first row in the DOM, i.e. parse + build)")
    print(line(f"traces list, {args.traces:,} traces", base["list"], big["list"]))
    print(line(f"trace view, {args.observations:,} obs.", base["trace"], big["trace"]))
    print(f"baseline: 200 traces / a 10-observation trace, same run; load average {load:.1f}")


if __name__ == "__main__":
    sys.exit(main())

"""Full-speed LangChain, traceyard against the peer tracesage 0.3.1, side by side in one run.

tracesage's ``langchain`` extra pins langchain-core<1.5 (ours runs a newer one), so it lives in
its own virtualenv, ``.cache/tracesage-venv`` in the repo, created here with uv on first use
(same interpreter as ours) and reused after. For each mode (sync, async) and each repeat, this
runs OUR measurement in-process (bench/langchain_fullspeed.py) and THEIR script
(bench/tracesage_fullspeed.py) as a subprocess for the same number of seconds, one after the
other (never at the same time: 2 cores), alternating which goes first. Each tracer's overhead
is measured against its own untraced invokes, interleaved in the same process; the untraced
times differ a little because the two venvs run different langchain-core versions.

Prints one row per tracer, mode and repeat, then the ratio of tracesage's overhead to ours.

    uv run python bench/compare_tracesage.py --seconds 60 --repeat 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _peer_venv import peer_python
from langchain_fullspeed import measure, run_async, run_sync
from rich.console import Console
from rich.table import Table

TRACESAGE_SPEC = "tracesage[langchain]==0.3.1"
TRACESAGE_VERSION = "0.3.1"
BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
VENV_DIR = REPO_DIR / ".cache" / "tracesage-venv"
PEER_SCRIPT = BENCH_DIR / "tracesage_fullspeed.py"
RUNNERS: dict[str, Callable[..., dict[str, float]]] = {"sync": run_sync, "async": run_async}

Result = dict[str, Any]


def ensure_tracesage_venv() -> Path:
    """The venv's python, with tracesage installed (created on first use, reused after): the
    same interpreter as ours, so the two measurements differ by the tracer and its
    langchain-core only."""
    probe = "import tracesage, langchain_core; print(tracesage.__version__)"
    return peer_python(VENV_DIR, TRACESAGE_SPEC, TRACESAGE_VERSION, probe)


def run_peer(python: Path, mode: str, seconds: float) -> Result:
    """tracesage_fullspeed.py in the tracesage venv: its one JSON line, as a dict."""
    done = subprocess.run(
        [str(python), str(PEER_SCRIPT), "--mode", mode, "--seconds", str(seconds)],
        capture_output=True,
        text=True,
        cwd=BENCH_DIR,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        sys.exit(f"tracesage run failed ({done.returncode}):\n{done.stdout}{done.stderr[-4000:]}")
    result: Result = json.loads(lines[-1])
    return result


def run_ours(mode: str, seconds: float) -> Result:
    return measure(mode, RUNNERS[mode], seconds)


def _share(part: int, whole: int) -> str:
    return f"{part} ({100 * part / whole:.1f}%)" if whole else str(part)


def _added_ms(result: Result) -> float:
    return float(result["traced_ms"]) - float(result["untraced_ms"])


def results_table(results: list[tuple[int, Result]]) -> Table:
    table = Table(title="Full-speed LangChain: traceyard vs tracesage (same run)")
    for column in (
        "tracer",
        "mode",
        "run",
        "untraced ms",
        "traced ms",
        "overhead ratio",
        "added ms",
        "events/invoke",
        "emitted",
        "dropped",
        "written during run (ev/s)",
        "persisted after stop",
        "lost at stop",
        "stop s",
    ):
        table.add_column(column, justify="left" if column in ("tracer", "mode") else "right")
    for run, r in results:
        emitted = int(r["emitted"])
        persisted = int(r["persisted"])
        # one definition for both: accepted (not dropped) but not in the store after stop()
        lost = emitted - int(r["dropped"]) - persisted
        table.add_row(
            f"{r['tracer']} {r['version']}",
            r["mode"],
            str(run),
            f"{r['untraced_ms']:.3f}",
            f"{r['traced_ms']:.3f}",
            f"{r['ratio']:.3f}",
            f"{_added_ms(r):.3f}",
            str(r["events_per_invoke"]),
            str(emitted),
            _share(int(r["dropped"]), emitted),
            f"{r['persisted_before_stop'] / r['run_s']:.0f}",
            _share(persisted, emitted),
            str(lost),
            f"{r['stop_s']:.2f}",
        )
    return table


def ratio_table(results: list[tuple[int, Result]]) -> Table:
    """Per mode and run: tracesage's overhead over ours, in added ms and in overhead ratio."""
    table = Table(title="tracesage overhead / traceyard overhead")
    for column in ("mode", "run", "added ms: tracesage / traceyard", "ratio - 1: tracesage / ours"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    pairs: dict[tuple[str, int], dict[str, Result]] = {}
    for run, r in results:
        pairs.setdefault((r["mode"], run), {})[r["tracer"]] = r
    for (mode, run), pair in pairs.items():
        ours, theirs = pair.get("traceyard"), pair.get("tracesage")
        if ours is None or theirs is None:
            continue
        our_added, their_added = _added_ms(ours), _added_ms(theirs)
        our_excess, their_excess = ours["ratio"] - 1, theirs["ratio"] - 1
        table.add_row(
            mode,
            str(run),
            f"{their_added / our_added:.1f}x" if our_added > 0 else "n/a (ours <= 0)",
            f"{their_excess / our_excess:.1f}x" if our_excess > 0 else "n/a (ours <= 0)",
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each configuration")
    parser.add_argument("--modes", nargs="+", choices=list(RUNNERS), default=list(RUNNERS))
    parser.add_argument("--json", type=Path, help="also write every result to this file")
    args = parser.parse_args()

    python = ensure_tracesage_venv()
    results: list[tuple[int, Result]] = []
    for run in range(1, args.repeat + 1):
        for mode in args.modes:
            # alternate who goes first, so a drift in machine load does not favour one side
            order = ("ours", "peer") if run % 2 else ("peer", "ours")
            for side in order:
                if side == "ours":
                    results.append((run, run_ours(mode, args.seconds)))
                else:
                    peer = run_peer(python, mode, args.seconds)
                    print(f"tracesage {mode}: {json.dumps(peer)}", flush=True)
                    results.append((run, peer))

    console = Console(width=200)
    console.print(results_table(results))
    console.print(ratio_table(results))
    for _, r in results:
        if r.get("note"):
            console.print(f"note ({r['tracer']} {r['mode']}): {r['note']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([{"run": run, **r} for run, r in results], indent=2))


if __name__ == "__main__":
    main()

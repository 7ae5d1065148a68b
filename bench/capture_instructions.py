"""CPU instructions the LangChain capture costs per invoke of the benchmark chain, by callgrind.

Timings on these shared 2-core machines move with the load; instruction counts do not. Each
run counts only what happens between two calls of ``os.getppid()`` (callgrind dumps its
counters on each, ``--dump-before=getppid``), on the app's threads (the main thread and the
executor running the parallel branches): imports, warm-up and the writer threads stay out.

* no handler / no-op handler (``run_inline = True``): LangChain's own work and its callback
  machinery; our handler into a discarding sink: the app-thread capture cost is the
  difference with the no-op handler.
* resolving payloads: ``dumps`` over each captured event's input and output, what the
  writer does for every row (the deferred :class:`~traceyard._internal.serialize.Lazy`
  conversions of messages and LLM results run there).

    uv run python bench/capture_instructions.py            # needs valgrind (Debian: valgrind)
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

WARMUP_INVOKES = 5
MODES = ("none", "noop", "handler", "resolve")


def workload(mode: str, invokes: int) -> None:
    """Warm up, then run the measured part of ``mode`` between two markers."""
    from _chain import CapturingSink, build_chain
    from langchain_core.callbacks import BaseCallbackHandler

    import traceyard
    from traceyard._internal.serialize import dumps
    from traceyard.model import Event

    class NoOp(BaseCallbackHandler):
        run_inline = True

    sink = CapturingSink()
    captured: list[Event] = sink.events

    def resolve(events: list[Event]) -> None:
        for event in events:
            fields = event.fields
            for key in ("input", "output"):
                if fields.get(key) is not None:
                    dumps(fields[key])

    chain = build_chain()
    # a writer that sleeps through the invokes: only stop() wakes it
    settings = traceyard.Settings(
        data_dir=tempfile.mkdtemp(prefix="traceyard-instr-"),
        start_server=False,
        worker_batch_size=10**6,
        worker_batch_timeout=60,
    )
    tracer = traceyard.Tracer(settings, store_factory=lambda: sink)
    config = {"none": {}, "noop": {"callbacks": [NoOp()]}}.get(
        mode, {"callbacks": [tracer.handler]}
    )
    for _ in range(WARMUP_INVOKES):
        chain.invoke({"q": "x"}, config=config)
    if mode == "resolve":  # capture, then resolve on this thread (the warm-up's first)
        for _ in range(invokes):
            chain.invoke({"q": "x"}, config=config)
        tracer.stop()
        warm = WARMUP_INVOKES * (len(captured) // (WARMUP_INVOKES + invokes))
        resolve(captured[:warm])
        os.getppid()
        resolve(captured[warm:])
        os.getppid()
        return
    os.getppid()
    for _ in range(invokes):
        chain.invoke({"q": "x"}, config=config)
    os.getppid()
    tracer.stop()


def measured_instructions(mode: str, invokes: int) -> int:
    """App-thread instructions between the two markers of one child run under callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            "valgrind", "--tool=callgrind", "--separate-threads=yes", "--dump-before=getppid",
            f"--callgrind-out-file={tmp}/out", sys.executable, __file__,
            "--child", mode, "--invokes", str(invokes),
        ]  # fmt: skip
        env = {**os.environ, "PYTHONHASHSEED": "0", "TRACEYARD_START_SERVER": "false"}
        result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        assert result.returncode == 0, result.stderr[-3000:]
        # out.1-NN: thread NN up to the first marker; out.2-NN: between the markers
        counts = {
            path.name[-2:]: int(re.findall(r"^summary: (\d+)", path.read_text(), re.M)[0])
            for path in Path(tmp).glob("out.2-*")
        }
    # Thread 02 is the writer's (started with the tracer, before any invoke; one thread, as
    # the capturing sink has no prepare/commit stages); the others are the app's: the main
    # thread and the executor running RunnableParallel. A thread idle between the markers
    # has no count.
    assert "01" in counts, counts
    return sum(n for thread, n in counts.items() if thread != "02")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--invokes", type=int, default=50)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    args = parser.parse_args()
    if args.child is not None:
        workload(args.child, args.invokes)
        return
    print(f"per invoke of the benchmark chain ({args.invokes} invokes, python "
          f"{sys.version.split()[0]}), app-thread instructions:")  # fmt: skip
    labels = {
        "none": "no handler",
        "noop": "no-op handler",
        "handler": "traceyard, discarding sink",
        "resolve": "resolving payloads to JSON",
    }
    figures: dict[str, float] = {}
    for mode in args.modes:
        figures[mode] = measured_instructions(mode, args.invokes) / args.invokes
        print(f"  {labels[mode]:27s}{figures[mode]:>12,.0f}", flush=True)
    if "handler" in figures and "noop" in figures:
        capture = figures["handler"] - figures["noop"]
        print(f"  {'app-thread capture':27s}{capture:>12,.0f}  (traceyard - no-op handler)")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    os.environ.setdefault("TRACEYARD_START_SERVER", "false")
    main()

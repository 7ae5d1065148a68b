"""Where the LangChain overhead goes: process CPU per invoke of the benchmark chain with no
handler, a no-op handler (LangChain's own callback machinery), our handler writing to a sink
that discards (the app-side capture), and our handler with the SQLite writer (the whole cost).

    uv run python bench/langchain_overhead_split.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from _chain import build_chain
from langchain_core.callbacks import BaseCallbackHandler

import traceyard
from traceyard.model import Event


class NullSink:
    def write(self, events: Sequence[Event]) -> None:
        pass

    def close(self) -> None:
        pass


class NoOp(BaseCallbackHandler):
    run_inline = True


def main(rounds: int = 10, invokes: int = 50) -> None:
    chain = build_chain()
    with tempfile.TemporaryDirectory() as tmp:
        settings = traceyard.Settings(data_dir=tmp, start_server=False)
        null_tracer = traceyard.Tracer(settings, store_factory=NullSink)
        sqlite_tracer = traceyard.Tracer.create(data_dir=tmp, start_server=False)
        configs: dict[str, Any] = {
            "no handler": {},
            "no-op handler": {"callbacks": [NoOp()]},
            "traceyard, null sink": {"callbacks": [null_tracer.handler]},
            "traceyard, SQLite": {"callbacks": [sqlite_tracer.handler]},
        }
        samples: dict[str, list[float]] = {name: [] for name in configs}
        for _ in range(rounds):
            for name, config in configs.items():
                start = time.process_time()
                for _ in range(invokes):
                    chain.invoke({"q": "x"}, config=config)
                samples[name].append((time.process_time() - start) / invokes * 1e3)
        null_tracer.stop()
        sqlite_tracer.stop()
    base = statistics.median(samples["no handler"])
    for name, values in samples.items():
        cpu = statistics.median(values)
        print(f"{name:22s} {cpu:.3f} ms CPU per invoke, {cpu / base:.3f} x no handler")


if __name__ == "__main__":
    main()

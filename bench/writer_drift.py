"""Writer throughput as the database grows: bursts of one-span traces, one after another.

Each burst emits ``--spans`` spans (each its own trace) as fast as the writer takes them
(bench/server_live.py's ``burst``: no drops) into the same SQLite data dir, and prints the
events/s of each burst. A flat series means the write cost does not grow with the data.

    uv run python bench/writer_drift.py --bursts 6 --spans 30000
"""

from __future__ import annotations

import argparse
import os
import tempfile

from server_live import burst

from traceyard.capture.tracer import Tracer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bursts", type=int, default=6)
    parser.add_argument("--spans", type=int, default=30_000)
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        tracer = Tracer.create(data_dir=tmp, start_server=False, worker_batch_timeout=0.05)
        burst(tracer, 5000)  # warm-up
        for n in range(1, args.bursts + 1):
            rate = burst(tracer, args.spans)
            print(f"burst {n}: {rate:,.0f} events/s with {n * args.spans:,} traces stored after it")
        tracer.stop()
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

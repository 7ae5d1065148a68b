"""CPU cost of OTLP decoding and translation per span, on bench/otlp_ingest.py's requests.

What the server spends on a span between reading the body and queueing its events, without
HTTP or the writer: ``decode_request`` (protobuf or JSON -> ``OtelSpan`` s) and ``translate``
(spans -> canonical events). The requests are otlp_ingest.py's: agent traces of 5 spans, 20%
of spans with a 20 KB input, 500 spans a request; the JSON figures are for the same requests
as OTLP/JSON.

Two measures, since these 2-core machines are shared and wall-clock time moves with the load:

* CPU µs per span: ``time.thread_time()`` around each call, summed over every request, the
  median of ``--repeat`` rounds.
* ``--instructions``: CPU instructions per span counted by callgrind, the same for the same
  code whatever else runs (three runs under valgrind: setup only, + decode, + translate; the
  differences divided by the spans). Needs valgrind; takes a few minutes.

    uv run python bench/otlp_translate.py [--spans 10000] [--instructions]
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


def json_bodies(bodies: list[bytes]) -> list[bytes]:
    """The same requests as OTLP/JSON (ids as hex, which protobuf's JSON mapping does not do)."""
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    converted = []
    for body in bodies:
        request = MessageToDict(ExportTraceServiceRequest.FromString(body))
        for resource_spans in request["resourceSpans"]:
            for scope_spans in resource_spans["scopeSpans"]:
                for span in scope_spans["spans"]:
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in span:
                            span[key] = base64.b64decode(span[key]).hex()
        converted.append(json.dumps(request).encode())
    return converted


def cpu_per_span(bodies: list[bytes], kind: str, repeat: int) -> tuple[float, float]:
    """Median CPU µs per span of (decode, translate) over ``repeat`` rounds."""
    from traceyard.ingest.otlp import decode_request, translate

    decode_us: list[float] = []
    translate_us: list[float] = []
    for _ in range(repeat):
        decoding = translating = 0.0
        spans = 0
        for body in bodies:
            started = time.thread_time()
            decoded = decode_request(body, kind)
            decoded_at = time.thread_time()
            translate(decoded.spans, "default")
            decoding += decoded_at - started
            translating += time.thread_time() - decoded_at
            spans += len(decoded.spans)
        decode_us.append(decoding / spans * 1e6)
        translate_us.append(translating / spans * 1e6)
    return statistics.median(decode_us), statistics.median(translate_us)


def child(bodies_path: Path, kind: str, steps: str) -> None:
    """Runs under callgrind: read the requests, warm up, then decode/translate (or not)."""
    from otlp_ingest import read_bodies

    from traceyard.ingest.otlp import decode_request, translate

    warm, *timed = read_bodies(bodies_path)
    translate(decode_request(warm, kind).spans, "default")  # imports, caches: not counted
    counted = 0
    for body in timed:
        if steps == "none":
            continue
        decoded = decode_request(body, kind)
        counted += len(decoded.spans)
        if steps == "both":
            translate(decoded.spans, "default")
    print(f"spans {counted}")


def instructions(bodies: list[bytes], kind: str) -> tuple[float, float]:
    """Callgrind instructions per span of (decode, translate); ``bodies[0]`` warms up."""
    from otlp_ingest import write_bodies

    counts: dict[str, int] = {}
    spans = 0
    with tempfile.TemporaryDirectory() as tmp:
        write_bodies(Path(tmp) / "bodies.bin", bodies)
        for steps in ("none", "decode", "both"):
            command = [
                "valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out",
                sys.executable, __file__, "--child", steps, "--kind", kind,
                "--bodies", f"{tmp}/bodies.bin",
            ]  # fmt: skip
            result = subprocess.run(command, capture_output=True, text=True, check=True)
            collected = re.search(r"Collected : ([\d,]+)", result.stderr)
            counted = re.search(r"spans (\d+)", result.stdout)
            assert collected and counted, result.stderr[-2000:]
            counts[steps] = int(collected.group(1).replace(",", ""))
            spans = max(spans, int(counted.group(1)))
    return (
        (counts["decode"] - counts["none"]) / spans,
        (counts["both"] - counts["decode"]) / spans,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--instructions", action="store_true", help="count with callgrind")
    parser.add_argument("--instruction-spans", type=int, default=2_000)
    parser.add_argument("--child", choices=("none", "decode", "both"), help=argparse.SUPPRESS)
    parser.add_argument("--kind", default=PROTOBUF, help=argparse.SUPPRESS)
    parser.add_argument("--bodies", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.bodies, args.kind, args.child)
        return

    from otlp_ingest import build_bodies

    bodies = build_bodies(args.spans, 500)
    print(f"{args.spans} spans in {len(bodies)} requests (otlp_ingest.py's load)")
    for kind, label, encoded in (
        (PROTOBUF, "protobuf", bodies),
        (JSON, "JSON", json_bodies(bodies)),
    ):
        decode_us, translate_us = cpu_per_span(encoded, kind, args.repeat)
        print(
            f"{label:8s} CPU µs/span: decode {decode_us:5.2f}  translate {translate_us:5.2f}  "
            f"total {decode_us + translate_us:5.2f}  (median of {args.repeat})"
        )
    if args.instructions:
        sample = build_bodies(args.instruction_spans + 500, 500)  # valgrind: ~50x slower
        for kind, label, encoded in (
            (PROTOBUF, "protobuf", sample),
            (JSON, "JSON", json_bodies(sample)),
        ):
            decode_i, translate_i = instructions(encoded, kind)
            print(
                f"{label:8s} instructions/span: decode {decode_i:,.0f}  translate "
                f"{translate_i:,.0f}  total {decode_i + translate_i:,.0f}  "
                f"({args.instruction_spans} spans, callgrind)"
            )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()

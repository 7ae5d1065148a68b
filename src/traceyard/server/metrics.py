"""``/metrics`` in the Prometheus text format (no client library needed for a few gauges).

Names start with ``traceyard_``; counters end in ``_total``; the only labels are small fixed
sets (HTTP status class, backend), never trace names, users or models.
"""

from __future__ import annotations

from collections.abc import Iterator

from traceyard._version import __version__
from traceyard.server.state import ServerState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _metric(
    name: str, kind: str, help_text: str, samples: list[tuple[str, float | None]]
) -> Iterator[str]:
    yield f"# HELP {name} {help_text}"
    yield f"# TYPE {name} {kind}"
    for labels, value in samples:
        if value is not None:
            yield f"{name}{labels} {_number(value)}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render(state: ServerState, ingest: dict[str, int] | None = None) -> str:
    """The exposition text; ``ingest`` holds the OTLP/Langfuse ingestion counters."""
    lines: list[str] = []
    add = lines.extend
    counts = state.store.counts()
    add(
        _metric(
            "traceyard_info",
            "gauge",
            "Version and backend of this server (always 1).",
            [(f'{{version="{__version__}",backend="{counts.backend}"}}', 1)],
        )
    )
    add(
        _metric(
            "traceyard_uptime_seconds", "gauge", "Seconds since start.", [("", state.uptime_s())]
        )
    )
    add(_metric("traceyard_store_traces", "gauge", "Traces in the store.", [("", counts.traces)]))
    add(
        _metric(
            "traceyard_store_observations",
            "gauge",
            "Observations in the store.",
            [("", counts.observations)],
        )
    )
    add(_metric("traceyard_store_scores", "gauge", "Scores in the store.", [("", counts.scores)]))
    add(
        _metric(
            "traceyard_store_size_bytes",
            "gauge",
            "Bytes the store takes on disk.",
            [("", counts.size_bytes)],
        )
    )
    tracer = state.tracer
    if tracer is not None:
        stats = tracer.stats()
        for name, value, help_text in (
            ("events_processed", stats.events_processed, "Events written to the store."),
            ("events_dropped", stats.events_dropped, "Events dropped (queue full, caps)."),
            ("events_sampled_out", stats.events_sampled_out, "Events not kept by sampling."),
            ("runs_throttled", stats.runs_throttled, "Root runs that hit the per-run cap."),
            ("batches_written", stats.batches_written, "Transactions committed by the writer."),
            ("internal_errors", stats.internal_errors, "traceyard's own errors (swallowed)."),
        ):
            add(_metric(f"traceyard_{name}_total", "counter", help_text, [("", value)]))
        add(
            _metric(
                "traceyard_queue_depth",
                "gauge",
                "Events waiting for the writer.",
                [("", stats.queue_depth)],
            )
        )
        add(
            _metric(
                "traceyard_queue_max", "gauge", "Bound of the event queue.", [("", stats.queue_max)]
            )
        )
        add(
            _metric(
                "traceyard_write_latency_p99_seconds",
                "gauge",
                "p99 of the last 1000 batch commits.",
                [("", _seconds(stats.p99_write_latency_ms))],
            )
        )
        add(
            _metric(
                "traceyard_write_latency_last_seconds",
                "gauge",
                "Duration of the last batch commit.",
                [("", _seconds(stats.last_write_latency_ms))],
            )
        )
    hub = state.hub
    add(
        _metric(
            "traceyard_live_clients",
            "gauge",
            "Connected live-stream clients.",
            [("", len(hub.clients))],
        )
    )
    add(
        _metric(
            "traceyard_live_clients_dropped_total",
            "counter",
            "Live-stream clients dropped for being too slow.",
            [("", hub.clients_dropped)],
        )
    )
    add(
        _metric(
            "traceyard_live_changes_sent_total",
            "counter",
            "Change messages queued to live-stream clients.",
            [("", hub.changes_sent)],
        )
    )
    counters = state.counters
    add(
        _metric(
            "traceyard_http_requests_total",
            "counter",
            "HTTP requests answered, by status class.",
            [(f'{{status="{cls}"}}', n) for cls, n in sorted(counters.requests.items())],
        )
    )
    add(
        _metric(
            "traceyard_retention_runs_total",
            "counter",
            "Background retention passes.",
            [("", counters.retention_runs)],
        )
    )
    add(
        _metric(
            "traceyard_retention_deleted_traces_total",
            "counter",
            "Traces deleted by background retention.",
            [("", counters.retention_deleted)],
        )
    )
    for name, value in (ingest or {}).items():
        add(
            _metric(
                f"traceyard_ingest_{name}_total",
                "counter",
                f"Ingestion (OTLP and Langfuse API): {name.replace('_', ' ')}.",
                [("", value)],
            )
        )
    return "\n".join(lines) + "\n"


def _seconds(ms: float | None) -> float | None:
    return None if ms is None else ms / 1000

"""What the routes share: the store, the settings, the tracer (when embedded), the hub."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from fastapi import Request

from traceyard.config import Settings
from traceyard.server.live import LiveHub, StorePoller
from traceyard.store.base import Store

if TYPE_CHECKING:
    from traceyard.capture.tracer import Tracer
    from traceyard.server.ingest_workers import IngestWorkers

#: ``embedded``: inside the app (``Tracer.create()``), whose tracer does all the writing, so
#: the live stream is pushed by the writer. ``standalone``: ``traceyard serve``, serving a data
#: dir that apps in other processes write to, so the live stream also polls the store.
Mode = Literal["embedded", "standalone"]


@dataclass
class ServerCounters:
    """Counters the server keeps about itself (exported on /metrics)."""

    requests: dict[str, int] = field(default_factory=dict)  # status class → count
    retention_runs: int = 0
    retention_deleted: int = 0


@dataclass
class ServerState:
    store: Store
    settings: Settings
    #: The tracer whose queue takes this server's writes (scores, ingestion); None → the
    #: routes write to the store directly.
    tracer: Tracer | None = None
    #: Other processes write to the store: find live changes by polling it.
    poll_store: bool = False
    #: Seconds between polls of the store for live changes (when ``poll_store``).
    poll_interval_s: float = 1.0
    #: The running poller (when ``poll_store``), set at startup.
    poller: StorePoller | None = None
    hub: LiveHub = field(default_factory=LiveHub)
    counters: ServerCounters = field(default_factory=ServerCounters)
    started_at: float = field(default_factory=time.monotonic)
    #: Set by the embedded server once it listens; used for printed links.
    base_url: str | None = None
    #: OTLP ingestion worker processes (standalone, ``settings.ingest_workers`` > 0), started
    #: and stopped with the app.
    ingest_workers: IngestWorkers | None = None

    @property
    def mode(self) -> Mode:
        return "standalone" if self.poll_store else "embedded"

    def uptime_s(self) -> float:
        return round(time.monotonic() - self.started_at, 3)


def get_state(request: Request) -> ServerState:
    """FastAPI dependency: the state of the app serving this request."""
    state: ServerState = request.app.state.traceyard
    return state

"""Putting translated events on the pipeline, honestly.

The ingestion routes must never answer 2xx for data that is then lost. The tracer's queue
drops (and counts) events past its bound, so a request's events are admitted all-or-nothing:
if the queue has no room for all of them, none is queued and the client is told to retry
later (429/503 with ``Retry-After``), which every OTLP exporter and Langfuse SDK does.

A server without a tracer (``traceyard serve`` over a store other processes write to) has no
queue: the events are written to the store before the answer, so 2xx still means durable.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from traceyard.errors import StoreError
from traceyard.model import Event
from traceyard.store.base import Store

#: Seconds a client is asked to wait when the queue is full: about one writer batch cycle.
RETRY_AFTER_S = 1


@dataclass
class IngestStats:
    """What the ingestion edge accepted or refused (for the status page and /metrics)."""

    requests: int = 0
    requests_refused_busy: int = 0
    events_accepted: int = 0
    events_refused_busy: int = 0
    events_rejected_invalid: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return {
                "requests": self.requests,
                "requests_refused_busy": self.requests_refused_busy,
                "events_accepted": self.events_accepted,
                "events_refused_busy": self.events_refused_busy,
                "events_rejected_invalid": self.events_rejected_invalid,
            }


@dataclass(frozen=True)
class Admission:
    """All of a request's events were taken (queued or written), or none were."""

    accepted: bool
    count: int
    reason: str = ""
    retry_after_s: int = RETRY_AFTER_S


class IngestSink:
    """Admits batches of events to a tracer's queue, or straight to a store."""

    def __init__(self, tracer: Any | None, store: Store) -> None:
        # A disabled tracer has a queue but no writer: it would swallow events, so bypass it.
        self.tracer = tracer if tracer is not None and tracer.enabled else None
        self.store = store
        self.stats = IngestStats()
        self._write_lock = threading.Lock()

    @property
    def writes_directly(self) -> bool:
        """True when :meth:`submit` writes to the store itself (it then blocks: run it in a
        worker thread)."""
        return self.tracer is None

    def submit(self, events: Sequence[Event]) -> Admission:
        """Take all of ``events``, or none of them (queue full, store down, tracer stopped)."""
        self.count_request()
        if not events:
            return Admission(True, 0)
        if self.tracer is None:
            return self._write_directly(events)
        if self.tracer.stopped:
            return self.refuse(len(events), "the server is shutting down")
        if not self.tracer.submit(events):
            return self.refuse(len(events), "the write queue is full")
        self.count_written(len(events))
        return Admission(True, len(events))

    def count_request(self) -> None:
        with self.stats._lock:
            self.stats.requests += 1

    def count_written(self, count: int) -> None:
        """``count`` events were taken (here, or committed by an ingest worker)."""
        with self.stats._lock:
            self.stats.events_accepted += count

    def count_invalid(self, count: int) -> None:
        if count:
            with self.stats._lock:
                self.stats.events_rejected_invalid += count

    def _write_directly(self, events: Sequence[Event]) -> Admission:
        try:
            with self._write_lock:
                self.store.write(events)
        except StoreError as exc:
            return self.refuse(len(events), f"the store is unavailable: {exc}")
        self.count_written(len(events))
        return Admission(True, len(events))

    def refuse(self, count: int, reason: str) -> Admission:
        """A request (of ``count`` events, 0 if not known) refused for now: counted."""
        with self.stats._lock:
            self.stats.requests_refused_busy += 1
            self.stats.events_refused_busy += count
        return Admission(False, 0, reason)

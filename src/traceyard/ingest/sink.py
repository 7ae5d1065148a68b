"""Putting translated events on the running tracer's pipeline, honestly.

The ingestion routes must never answer 2xx for data that is then lost. The queue drops (and
counts) events past its bound, so a request's events are admitted all-or-nothing: if the
queue has no room for all of them, none is queued and the client is told to retry later
(429/503 with ``Retry-After``), which every OTLP exporter and Langfuse SDK does.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from traceyard.model import Event

#: Seconds a client is asked to wait when the queue is full: about one writer batch cycle.
RETRY_AFTER_S = 1


class _Queue(Protocol):
    maxsize: int

    def put(self, event: Event) -> bool: ...

    def __len__(self) -> int: ...


@dataclass
class IngestStats:
    """Counters for the status page and /metrics: what the ingestion edge accepted or refused."""

    requests: int = 0
    requests_refused_busy: int = 0
    events_accepted: int = 0
    events_refused_busy: int = 0
    events_rejected_invalid: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def as_dict(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "requests_refused_busy": self.requests_refused_busy,
            "events_accepted": self.events_accepted,
            "events_refused_busy": self.events_refused_busy,
            "events_rejected_invalid": self.events_rejected_invalid,
        }


@dataclass(frozen=True)
class Admission:
    """What happened to a request's events: all queued, or none (the queue was full)."""

    accepted: bool
    queued: int
    retry_after_s: int = RETRY_AFTER_S


class IngestSink:
    """Admits batches of events to a tracer's queue; one per running app."""

    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer
        self.stats = IngestStats()

    @property
    def _queue(self) -> _Queue:
        queue: _Queue = self.tracer._queue
        return queue

    def submit(self, events: Sequence[Event]) -> Admission:
        """Queue all of ``events``, or none of them when the queue lacks room for all."""
        queue = self._queue
        stats = self.stats
        with stats._lock:
            stats.requests += 1
        if getattr(self.tracer, "stopped", False):
            return self._refuse(len(events))
        if len(queue) + len(events) > queue.maxsize:
            return self._refuse(len(events))
        queued = 0
        for event in events:
            # Concurrent requests may fill the last slots between the check and here; the
            # queue then counts the overflow as dropped and marks its traces incomplete, and
            # the client is still told to retry (the events that did land merge idempotently).
            if not queue.put(event):
                return self._refuse(len(events) - queued)
            queued += 1
        with stats._lock:
            stats.events_accepted += queued
        return Admission(True, queued)

    def count_invalid(self, count: int) -> None:
        if count:
            with self.stats._lock:
                self.stats.events_rejected_invalid += count

    def _refuse(self, count: int) -> Admission:
        with self.stats._lock:
            self.stats.requests_refused_busy += 1
            self.stats.events_refused_busy += count
        return Admission(False, 0)

"""The bounded, non-blocking hand-off between app threads and the writer.

A ``deque`` plus a ``threading.Event``, the shape of OpenTelemetry's BatchProcessor: an append
is atomic under the GIL and costs ~50 ns, where ``queue.Queue.put_nowait`` takes a lock and a
condition (~1 µs). The bound is checked before appending, so with many producers the queue can
overshoot ``maxsize`` by at most one event per producer thread, never without bound.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence

from traceyard.model import Event

#: Traces remembered as having lost events, until the writer marks them incomplete.
_MAX_LOSSY_TRACES = 10_000


class FlushMarker:
    """Put in the queue by flush(); set once everything before it is durable."""

    __slots__ = ("done", "lost")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.lost = 0


class EventQueue:
    """Events waiting for the writer. ``put`` never blocks and never raises."""

    def __init__(self, maxsize: int, batch_size: int) -> None:
        self.maxsize = maxsize
        self.batch_size = batch_size
        self.items: deque[Event | FlushMarker] = deque()
        self.wake = threading.Event()
        self._drop_lock = threading.Lock()
        # serialises batch producers, so two requests cannot both take the last free room
        self._batch_lock = threading.Lock()
        self.dropped = 0
        self.lossy_traces: set[str] = set()

    def put(self, event: Event) -> bool:
        items = self.items
        if len(items) >= self.maxsize:
            self.drop(event.trace_id)
            return False
        items.append(event)
        # Event.set() takes a lock and notifies: only pay for it when the writer sleeps.
        if len(items) >= self.batch_size and not self.wake.is_set():
            self.wake.set()
        return True

    def put_batch(self, events: Sequence[Event]) -> bool:
        """Take all of ``events`` or none (ingestion answers a request as a whole): False when
        they do not fit. Nothing is counted as dropped: the caller refuses the request."""
        with self._batch_lock:
            if len(self.items) + len(events) > self.maxsize:
                return False
            self.items.extend(events)
        if len(self.items) >= self.batch_size and not self.wake.is_set():
            self.wake.set()
        return True

    def drop(self, trace_id: str, count: int = 1) -> None:
        """Count lost events; remember their trace so it is marked incomplete, not "done"."""
        with self._drop_lock:
            self.dropped += count
            if trace_id and len(self.lossy_traces) < _MAX_LOSSY_TRACES:
                self.lossy_traces.add(trace_id)

    def take_lossy_traces(self) -> set[str]:
        with self._drop_lock:
            taken, self.lossy_traces = self.lossy_traces, set()
        return taken

    def put_marker(self, marker: FlushMarker) -> None:
        """Markers bypass the bound: a flush must be able to wait even on a full queue."""
        self.items.append(marker)
        self.wake.set()

    def __len__(self) -> int:
        return len(self.items)

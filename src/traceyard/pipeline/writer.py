"""The one background writer: drains the queue in batches, one transaction per batch.

Woken when a batch's worth of events is waiting or when ``batch_timeout`` passes, whichever
comes first. A store that is unavailable (locked by another process, server down) is retried
with capped backoff while the queue keeps absorbing events, dropping and counting past its
bound; anything else is an internal error, retried twice and then counted as lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from traceyard._internal import guard
from traceyard.errors import StoreUnavailableError
from traceyard.model import Entity, Event
from traceyard.pipeline.queue import EventQueue, FlushMarker
from traceyard.pipeline.sink import Sink

logger = logging.getLogger("traceyard")

#: Listeners get each committed batch (the server's live stream). They run on the writer
#: thread, so they must be quick and must not block.
BatchListener = Callable[[Sequence[Event]], None]

_MAX_BACKOFF_S = 2.0
_ATTEMPTS_ON_INTERNAL_ERROR = 3
_MAX_TRACKED_TRACES = 100_000


class Writer:
    """Owns the writer thread. Created stopped; :meth:`start` launches the thread."""

    def __init__(
        self,
        queue: EventQueue,
        sink: Sink,
        *,
        project: str,
        batch_timeout: float,
        capture_content: bool = True,
    ) -> None:
        self.queue = queue
        self.sink = sink
        self.project = project
        self.batch_timeout = batch_timeout
        self.capture_content = capture_content
        self.listeners: list[BatchListener] = []
        # Counters below are written by the writer thread only.
        self.events_processed = 0
        self.batches_written = 0
        self.latencies_ms: deque[float] = deque(maxlen=1000)
        self.last_error: str | None = None
        #: held while a batch is written; fork() takes it so no write spans the fork
        self.write_lock = threading.Lock()
        # Traces that lost events but have nothing written yet, and traces written lately
        # (both bounded, oldest forgotten first): see _incomplete_marks.
        self._lossy_traces: dict[str, None] = {}
        self._written_traces: dict[str, None] = {}
        self._in_hand = 0  # events of the batch being written
        self._abandoned = False  # stop() gave up on a write stuck in the sink
        self._stopping = threading.Event()
        self._deadline = float("inf")
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="traceyard-writer", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float | None) -> int:
        """Drain what is queued and stop; returns how many events could not be written."""
        self._deadline = time.monotonic() + timeout if timeout is not None else float("inf")
        self._stopping.set()
        self.queue.wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            # past the deadline the thread gives up the batch in hand within one backoff step
            thread.join(None if timeout is None else timeout + _MAX_BACKOFF_S + 1.0)
        lost = 0
        if thread is not None and thread.is_alive():  # stuck inside the sink's write
            self._abandoned = True
            lost += self._in_hand
            for _ in range(self._in_hand):
                self.queue.drop("")
        # Whatever the thread did not reach in time is lost; count it so nothing vanishes.
        leftover = [item for item in self._pop_all() if isinstance(item, Event)]
        for event in leftover:
            self.queue.drop(event.trace_id)
        return lost + len(leftover)

    def flush(self, timeout: float | None) -> int:
        """Wait until everything queued before this call is durable.

        Returns 0 when it is, else how many events were still waiting when time ran out.
        """
        if not self.running:
            return len(self.queue)
        marker = FlushMarker()
        self.queue.put_marker(marker)
        if marker.done.wait(timeout):
            return marker.lost
        queued = sum(1 for item in list(self.queue.items) if isinstance(item, Event))
        return queued + self._in_hand

    # ------------------------------------------------------------------ the loop

    def _run(self) -> None:
        queue = self.queue
        while True:
            if not self._stopping.is_set():
                queue.wake.wait(self.batch_timeout)
                queue.wake.clear()
            try:
                self._drain()
            except Exception as exc:  # the loop itself must survive anything
                guard.report("writer loop", exc)
            if self._stopping.is_set() and (not queue.items or self._past_deadline()):
                return

    def _past_deadline(self) -> bool:
        return time.monotonic() >= self._deadline

    def _pop_all(self) -> list[Event | FlushMarker]:
        items = self.queue.items
        popped: list[Event | FlushMarker] = []
        while True:
            try:
                popped.append(items.popleft())
            except IndexError:
                return popped

    def _drain(self) -> None:
        items = self.queue.items
        size = self.queue.batch_size
        while items or self.queue.lossy_traces:
            batch: list[Event] = []
            markers: list[FlushMarker] = []
            while len(batch) < size:
                try:
                    item = items.popleft()
                except IndexError:
                    break
                if isinstance(item, FlushMarker):
                    markers.append(item)
                    break
                batch.append(item)
            lost = self._write(batch)
            for marker in markers:
                marker.lost = lost
                marker.done.set()
            if self._stopping.is_set() and self._past_deadline():
                return

    def _write(self, batch: list[Event]) -> int:
        """Write one batch (retrying); returns how many of its events were lost."""
        events: Sequence[Event] = batch
        if not self.capture_content:
            events = [_without_content(e) for e in batch]
        events = [*events, *self._incomplete_marks(batch)]
        if not events:
            return 0
        self._in_hand = len(batch)
        try:
            return self._write_with_retries(batch, events)
        finally:
            self._in_hand = 0

    def _write_with_retries(self, batch: list[Event], events: Sequence[Event]) -> int:
        attempt, backoff = 0, 0.05
        while True:
            started = time.perf_counter()
            try:
                with self.write_lock:
                    self.sink.write(events)
            except StoreUnavailableError as exc:
                self.last_error = str(exc)
                if self._stopping.is_set() and self._past_deadline():
                    return self._lose(batch)
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                guard.report("writer", exc)
                attempt += 1
                if attempt >= _ATTEMPTS_ON_INTERNAL_ERROR:
                    return self._lose(batch)
            else:
                elapsed_ms = (time.perf_counter() - started) * 1000
                self.latencies_ms.append(elapsed_ms)
                self.batches_written += 1
                if not self._abandoned:  # else stop() already counted them as lost
                    self.events_processed += len(batch)
                self._notify(events)
                return 0
            # never sleep past a stop() deadline
            time.sleep(max(0.0, min(backoff, self._deadline - time.monotonic())))
            backoff = min(backoff * 2, _MAX_BACKOFF_S)

    def _incomplete_marks(self, batch: Sequence[Event]) -> list[Event]:
        """``incomplete`` marks for the traces that lost events and have a row to mark.

        A trace whose every event was dropped gets no row at all (its loss is in the counters):
        marking it would create an empty trace, and under overload those marks would take half
        of the writer's capacity. A trace is marked once something of it is written: now, if
        this batch or a recent one carried it, or later, when its next kept event arrives.
        """
        pending, written = self._lossy_traces, self._written_traces
        in_batch = dict.fromkeys(e.trace_id for e in batch if e.trace_id)
        marks = dict.fromkeys(t for t in in_batch if t in pending)  # their first kept event
        for trace_id in marks:
            del pending[trace_id]
        waiting: dict[str, None] = {}
        for trace_id in self.queue.take_lossy_traces():
            if trace_id in in_batch or trace_id in written:
                marks[trace_id] = None
            else:
                waiting[trace_id] = None
        _bounded_update(pending, waiting, _MAX_TRACKED_TRACES)
        _bounded_update(written, in_batch, _MAX_TRACKED_TRACES)
        return [
            Event(Entity.TRACE, trace_id, trace_id, self.project, {"incomplete": True})
            for trace_id in marks
        ]

    def _lose(self, batch: list[Event]) -> int:
        for event in batch:
            self.queue.drop(event.trace_id)
        return len(batch)

    def _notify(self, events: Sequence[Event]) -> None:
        for listener in self.listeners:
            with guard.guarded("batch listener"):
                listener(events)

    # ------------------------------------------------------------------ figures

    def p99_latency_ms(self) -> float | None:
        samples = sorted(self.latencies_ms)
        if not samples:
            return None
        return samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def _bounded_update(ordered: dict[str, None], new: dict[str, None], limit: int) -> None:
    """Add ``new`` keys as the most recent ones and forget the oldest beyond ``limit``."""
    for key in new:
        ordered.pop(key, None)
        ordered[key] = None
    while len(ordered) > limit:
        del ordered[next(iter(ordered))]


def _without_content(event: Event) -> Event:
    if "input" not in event.fields and "output" not in event.fields:
        return event
    fields = {k: v for k, v in event.fields.items() if k not in ("input", "output")}
    return Event(event.entity, event.id, event.trace_id, event.project, fields)

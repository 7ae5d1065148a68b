"""The background writer: drains the queue in batches, one transaction per batch.

Two threads, in a line. The *prepare* thread wakes when a batch's worth of events is waiting
or when ``batch_timeout`` passes, takes a batch off the queue and prepares it (the sink's CPU
work: merging, JSON, compression); the *commit* thread makes prepared batches durable, in the
order they were taken. One batch is prepared while the previous one commits (see
:class:`~traceyard.pipeline.sink.StagedSink`). A sink that cannot split its writes (the
remote sender) gets one thread that takes, writes, and takes the next.

A sink that is unavailable (locked by another process, server down) is retried with capped
backoff while the queue keeps absorbing events, dropping and counting past its bound; anything
else is an internal error, retried twice and then counted as lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from traceyard._internal import guard
from traceyard.errors import StoreUnavailableError
from traceyard.model import Entity, Event
from traceyard.pipeline.queue import EventQueue, FlushMarker
from traceyard.pipeline.sink import Sink, StagedSink

logger = logging.getLogger("traceyard")

#: Listeners get each committed batch (the server's live stream). They run on the commit
#: thread, so they must be quick and must not block.
BatchListener = Callable[[Sequence[Event]], None]

_MAX_BACKOFF_S = 2.0
_ATTEMPTS_ON_INTERNAL_ERROR = 3
_MAX_TRACKED_TRACES = 100_000
#: Prepared batches waiting for the commit thread: one is enough to keep it busy, and more
#: would only hold events in memory that the queue's bound no longer counts.
_PREPARED_AHEAD = 1


@dataclass(slots=True)
class _Batch:
    """A batch on its way from the queue to the sink."""

    taken: list[Event]  # what was taken off the queue: counted as processed or lost
    events: Sequence[Event]  # what the sink gets (content filtered, incomplete marks added)
    prepared: Any = None
    failed: bool = False  # preparing raised: nothing to commit, the batch is lost
    markers: list[FlushMarker] = field(default_factory=list)


class Writer:
    """Owns the writer threads. Created stopped; :meth:`start` launches them."""

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
        self._staged = isinstance(sink, StagedSink)
        if isinstance(sink, StagedSink):
            self._prepare: Callable[[Sequence[Event]], Any] = sink.prepare
            self._commit: Callable[[Any], None] = sink.commit
        else:
            self._prepare, self._commit = _as_is, sink.write
        self.project = project
        self.batch_timeout = batch_timeout
        self.capture_content = capture_content
        self.listeners: list[BatchListener] = []
        # Figures, written by the commit thread only (prepare latencies by the other).
        self.events_processed = 0
        self.batches_written = 0
        self.latencies_ms: deque[float] = deque(maxlen=1000)
        self.prepare_latencies_ms: deque[float] = deque(maxlen=1000)
        self.last_error: str | None = None
        #: held while a batch commits; fork() takes it so no write spans the fork
        self.write_lock = threading.Lock()
        # Traces that lost events but have nothing written yet, and traces written lately
        # (both bounded, oldest forgotten first): see _incomplete_marks.
        self._lossy_traces: dict[str, None] = {}
        self._written_traces: dict[str, None] = {}
        # Prepared batches handed to the commit thread, and the condition both threads wait on.
        self._handoff: deque[_Batch] = deque()
        self._handoff_changed = threading.Condition()
        self._all_prepared = False  # the prepare thread has finished: commit what is left
        # Events taken off the queue and neither committed nor lost yet.
        self._settle_lock = threading.Lock()
        self._in_flight = 0
        self._lost_since_marker = 0  # commit thread: reported by the next flush marker
        self._abandoned = False  # stop() gave up on a write stuck in the sink
        self._stopping = threading.Event()
        self._deadline = float("inf")
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._threads = [
            threading.Thread(target=self._prepare_loop, name="traceyard-writer", daemon=True)
        ]
        if self._staged:  # else the one thread writes what it takes, in turn
            self._threads.append(
                threading.Thread(target=self._commit_loop, name="traceyard-commit", daemon=True)
            )
        for thread in self._threads:
            thread.start()

    @property
    def running(self) -> bool:
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    def stop(self, timeout: float | None) -> int:
        """Drain what is queued and stop; returns how many events could not be written."""
        self._deadline = time.monotonic() + timeout if timeout is not None else float("inf")
        self._stopping.set()
        self.queue.wake.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                # past the deadline a thread gives up its batch within one backoff step
                remaining = self._deadline - time.monotonic()
                thread.join(None if timeout is None else max(remaining, 0) + _MAX_BACKOFF_S + 1)
        lost = 0
        if any(thread.is_alive() for thread in self._threads):  # stuck inside the sink
            with self._settle_lock:
                self._abandoned = True
                lost, self._in_flight = self._in_flight, 0
            self.queue.drop("", lost)
        # Whatever the threads did not reach in time is lost; count it so nothing vanishes.
        leftover = [item for item in self._pop_all() if isinstance(item, Event)]
        for event in leftover:
            self.queue.drop(event.trace_id)
        return lost + len(leftover)

    def flush(self, timeout: float | None) -> int:
        """Wait until everything queued before this call is durable.

        Returns 0 when it is, else how many events were lost or still waiting when time ran
        out.
        """
        if not self.running:
            return len(self.queue)
        marker = FlushMarker()
        self.queue.put_marker(marker)
        if marker.done.wait(timeout):
            return marker.lost
        queued = sum(1 for item in list(self.queue.items) if isinstance(item, Event))
        return queued + self._in_flight

    # ------------------------------------------------------------------ prepare thread

    def _prepare_loop(self) -> None:
        queue = self.queue
        try:
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
        finally:
            with self._handoff_changed:
                self._all_prepared = True
                self._handoff_changed.notify_all()

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
            # Take the next batch only when the commit thread has room for it: then at most
            # two batches are out of the queue, one committing and one prepared.
            if not self._room_for_next_batch():
                return
            taken: list[Event] = []
            markers: list[FlushMarker] = []
            while len(taken) < size:
                try:
                    item = items.popleft()
                except IndexError:
                    break
                if isinstance(item, FlushMarker):
                    markers.append(item)
                    break
                taken.append(item)
            with self._settle_lock:
                self._in_flight += len(taken)
            batch = self._prepared(taken, markers)
            if self._staged:
                self._hand_off(batch)
            else:
                self._commit_batch(batch)
            if self._stopping.is_set() and self._past_deadline():
                return

    def _prepared(self, taken: list[Event], markers: list[FlushMarker]) -> _Batch:
        events: Sequence[Event] = taken
        if not self.capture_content:
            events = [_without_content(e) for e in taken]
        in_batch = dict.fromkeys(e.trace_id for e in taken if e.trace_id)
        events = [*events, *self._incomplete_marks(in_batch)]
        batch = _Batch(taken, events, markers=markers)
        if events:
            started = time.perf_counter()
            try:
                batch.prepared = self._prepare(events)
            except Exception as exc:  # a bug of ours: the batch cannot be written
                self.last_error = f"{type(exc).__name__}: {exc}"
                guard.report("writer (prepare)", exc)
                batch.failed = True
            self.prepare_latencies_ms.append((time.perf_counter() - started) * 1000)
        if not batch.failed:
            _bounded_update(self._written_traces, in_batch, _MAX_TRACKED_TRACES)
        return batch

    def _room_for_next_batch(self) -> bool:
        """Wait until the commit thread can take another batch; False past a stop deadline."""
        with self._handoff_changed:
            while len(self._handoff) >= _PREPARED_AHEAD:
                if self._stopping.is_set() and self._past_deadline():
                    return False  # the commit thread is stuck: leave the rest queued
                self._handoff_changed.wait(0.1)
        return True

    def _hand_off(self, batch: _Batch) -> None:
        with self._handoff_changed:
            self._handoff.append(batch)
            self._handoff_changed.notify_all()

    def _incomplete_marks(self, in_batch: dict[str, None]) -> list[Event]:
        """``incomplete`` marks for the traces that lost events and have a row to mark.

        A trace whose every event was dropped gets no row at all (its loss is in the counters):
        marking it would create an empty trace, and under overload those marks would take half
        of the writer's capacity. A trace is marked once something of it is written: now, if
        this batch (``in_batch``: its traces) or a recent one carried it, or later, when its
        next kept event arrives.
        """
        pending, written = self._lossy_traces, self._written_traces
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
        return [
            Event(Entity.TRACE, trace_id, trace_id, self.project, {"incomplete": True})
            for trace_id in marks
        ]

    # ------------------------------------------------------------------ commit thread

    def _commit_loop(self) -> None:
        while True:
            with self._handoff_changed:
                while not self._handoff and not self._all_prepared:
                    self._handoff_changed.wait()
                if not self._handoff:
                    return
                batch = self._handoff.popleft()
                self._handoff_changed.notify_all()
            try:
                self._commit_batch(batch)
            except Exception as exc:  # the loop itself must survive anything
                guard.report("writer loop", exc)

    def _commit_batch(self, batch: _Batch) -> None:
        committed = not batch.failed and (not batch.events or self._commit_with_retries(batch))
        self._finish(batch, committed=committed)

    def _commit_with_retries(self, batch: _Batch) -> bool:
        """Commit one batch, retrying; False when it had to be given up."""
        attempt, backoff = 0, 0.05
        while True:
            started = time.perf_counter()
            try:
                with self.write_lock:
                    self._commit(batch.prepared)
            except StoreUnavailableError as exc:
                self.last_error = str(exc)
                if self._stopping.is_set() and self._past_deadline():
                    return False
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                guard.report("writer", exc)
                attempt += 1
                if attempt >= _ATTEMPTS_ON_INTERNAL_ERROR:
                    return False
            else:
                self.latencies_ms.append((time.perf_counter() - started) * 1000)
                self.batches_written += 1
                self._notify(batch.events)
                return True
            # never sleep past a stop() deadline
            time.sleep(max(0.0, min(backoff, self._deadline - time.monotonic())))
            backoff = min(backoff * 2, _MAX_BACKOFF_S)

    def _finish(self, batch: _Batch, *, committed: bool) -> None:
        """Count a batch's events as processed or lost (unless stop() already has), then
        release the flushes waiting on it."""
        with self._settle_lock:
            if not self._abandoned:
                self._in_flight -= len(batch.taken)
                if committed:
                    self.events_processed += len(batch.taken)
                else:
                    self._lost_since_marker += len(batch.taken)
                    for event in batch.taken:
                        self.queue.drop(event.trace_id)
            lost = self._lost_since_marker
            if batch.markers:
                self._lost_since_marker = 0
        for marker in batch.markers:
            marker.lost = lost
            marker.done.set()

    def _notify(self, events: Sequence[Event]) -> None:
        for listener in self.listeners:
            with guard.guarded("batch listener"):
                listener(events)

    # ------------------------------------------------------------------ figures

    def p99_latency_ms(self) -> float | None:
        return _p99(self.latencies_ms)

    def p99_prepare_latency_ms(self) -> float | None:
        return _p99(self.prepare_latencies_ms)


def _p99(samples: deque[float]) -> float | None:
    ordered = sorted(samples)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _as_is(events: Sequence[Event]) -> Sequence[Event]:
    """The prepare step of a sink that only has ``write``."""
    return events


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

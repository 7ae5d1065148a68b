"""One forwarding target: its own bounded queue, its own thread, its own counters.

The writer hands each durable batch to every forwarder with :meth:`Forwarder.offer`, which only
appends a reference to a deque (or counts the batch as dropped when the target is this far
behind), so a target that is slow or down never holds up the writer, ingestion, or the other
targets. The thread merges partial events into finished spans (:mod:`.assemble`), sends them
in requests of at most ``max_spans_per_request``, and retries each request with backoff and
full jitter (or the target's ``Retry-After``) up to ``max_attempts`` times; then its spans
count as ``failed`` and the thread moves on, so one bad target cannot grow without bound.

Counters (``stats()``): ``sent``/``failed`` are spans and scores; ``dropped`` are events the
queue refused or that were still waiting at shutdown; ``skipped`` are scores a target has no
place for. The thread is rebuilt in a forked child (whose parent's queue is not its own).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import httpx

from traceyard._internal import guard
from traceyard._version import __version__
from traceyard.forward.assemble import Assembler, SpanRecord
from traceyard.forward.config import LangfuseTarget, OtlpTarget
from traceyard.forward.convention import Convention, Outgoing
from traceyard.forward.genai import GenAiConvention
from traceyard.forward.langfuse import LangfuseConvention
from traceyard.model import Event
from traceyard.remote.retry import RETRYABLE_STATUSES, Backoff, parse_retry_after

logger = logging.getLogger("traceyard")

_DELIVERED = object()
_REFUSED = object()


def convention_for(target: LangfuseTarget | OtlpTarget) -> Convention:
    if isinstance(target, LangfuseTarget):
        return LangfuseConvention(target)
    return GenAiConvention(target)


class Forwarder:
    """Created running; :meth:`close` drains within a deadline and stops (idempotent)."""

    def __init__(
        self,
        target: LangfuseTarget | OtlpTarget,
        label: str,
        *,
        transport: httpx.BaseTransport | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.target = target
        self.label = label
        self.convention = convention_for(target)
        self.backoff = backoff or Backoff(base_s=0.5, cap_s=30.0)
        self._transport = transport
        self._closed = False
        self._start()

    def _start(self) -> None:
        """Fresh state: at creation, and in a forked child."""
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._inbox: deque[Sequence[Event]] = deque()
        self._inbox_events = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._busy = False
        self._deadline = float("inf")
        self._assembler = Assembler()
        self._client: httpx.Client | None = None
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self.skipped = 0
        self.retried = 0
        self.requests = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_success_at: float | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"traceyard-forward-{self.label}", daemon=True
        )
        self._thread.start()

    # ------------------------------------------------------------------ the writer's side

    def offer(self, events: Sequence[Event]) -> None:
        """Queue a durable batch for this target; never blocks (drops and counts instead)."""
        if self._closed or not events:
            return
        if os.getpid() != self._pid:
            self._start()
        with self._lock:
            if self._inbox_events + len(events) > self.target.max_queue_events:
                self.dropped += len(events)
                return
            self._inbox.append(events)
            self._inbox_events += len(events)
        self._wake.set()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything offered so far is sent or given up (unfinished observations
        stay until they end); False if ``timeout`` ran out first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._wake.set()
        with self._idle:
            while self._inbox or self._busy:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (unfinished observations included) within ``timeout``, then
        stop; whatever is left counts as dropped."""
        if self._closed:
            return
        self._closed = True
        if os.getpid() != self._pid:
            return  # a forked child that never used its copy
        self._deadline = time.monotonic() + timeout
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout + 1.0)
        with self._lock:
            leftover = self._inbox_events
            self._inbox.clear()
            self._inbox_events = 0
        self.dropped += leftover
        if self._client is not None:
            self._client.close()

    def stats(self) -> dict[str, Any]:
        return {
            "type": self.target.type,
            "sent": self.sent,
            "failed": self.failed,
            "dropped": self.dropped,
            "skipped": self.skipped,
            "retried": self.retried,
            "requests": self.requests,
            "queue_depth": self._inbox_events,
            "open_spans": self._assembler.open_count,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "last_success_at": self.last_success_at,
        }

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        while True:
            self._wake.wait(self.target.flush_interval_s)
            self._wake.clear()
            stopping = self._stop.is_set()
            try:
                self._cycle(final=stopping)
            except Exception as exc:  # the thread must survive anything
                guard.report(f"forwarder {self.label}", exc)
            with self._idle:
                self._busy = False
                if not self._inbox:
                    self._idle.notify_all()
            if stopping:
                return

    def _cycle(self, final: bool) -> None:
        with self._lock:
            batches = list(self._inbox)
            self._inbox.clear()
            self._busy = True
        for batch in batches:
            self._assembler.add(batch)
            with self._lock:
                self._inbox_events -= len(batch)
        spans, scores = self._assembler.take_all() if final else self._assembler.take()
        size = self.target.max_spans_per_request
        for start in range(0, len(spans), size):
            self._send_spans(spans[start : start + size])
        if scores:
            request = self.convention.scores_request(scores)
            if request is None:
                self.skipped += len(scores)
            else:
                self._send(request)

    def _send_spans(self, spans: Sequence[SpanRecord]) -> None:
        try:
            request = self.convention.spans_request(spans)
        except Exception as exc:
            self.failed += len(spans)
            guard.report(f"forwarder {self.label}: encoding", exc)
            return
        self._send(request)

    def _send(self, request: Outgoing) -> None:
        """Deliver one request, retrying; count its items as sent or failed."""
        for attempt in range(1, self.target.max_attempts + 1):
            if attempt > 1:
                self.retried += 1
            outcome = self._attempt(request)
            if outcome is _DELIVERED:
                return
            if outcome is _REFUSED or attempt == self.target.max_attempts:
                break
            delay = self.backoff.delay(attempt, outcome if isinstance(outcome, float) else None)
            if time.monotonic() + delay > self._deadline:
                break
            self._stop.wait(delay)
        self.failed += request.count

    def _attempt(self, request: Outgoing) -> float | object | None:
        """_DELIVERED, _REFUSED (for good), or the Retry-After seconds (None: none given)."""
        try:
            response = self._http().post(request.url, content=request.body, headers=request.headers)
        except httpx.HTTPError as exc:
            self._error(f"{type(exc).__name__}: {exc or 'no detail'} ({request.url})")
            return None
        status = response.status_code
        if 200 <= status < 300:
            rejected = min(self.convention.rejected_in(request, response), request.count)
            self.requests += 1
            self.sent += request.count - rejected
            self.failed += rejected
            if rejected:
                self._error(
                    f"{request.url} refused {rejected} of {request.count}: {response.text[:300]}"
                )
            self.last_success_at = time.time()
            return _DELIVERED
        self._error(f"{status} from {request.url}: {response.text[:300]}")
        if status in RETRYABLE_STATUSES:
            return parse_retry_after(response.headers.get("retry-after"))
        return _REFUSED

    def _error(self, message: str) -> None:
        self.last_error = message
        self.last_error_at = time.time()

    def _http(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                timeout=httpx.Timeout(
                    self.target.timeout_s, connect=min(self.target.timeout_s, 5.0)
                ),
                headers={"User-Agent": f"traceyard/{__version__}"},
                transport=self._transport,
                trust_env=False,
            )
        return self._client

"""The tracer: one object an app creates, that captures runs and hands them to the writer.

Lifecycle: ``Tracer.create()`` → running → ``stop()`` → stopped (idempotent). A disabled tracer
(``enabled=False``) is inert from the start: no thread, no file, no port.

The app thread only builds a small :class:`~traceyard.model.Event` and appends it to a bounded
queue; everything else (serialisation, merging, pricing, SQL) happens on the writer thread.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from traceyard import _global
from traceyard._internal import guard
from traceyard.capture.context import (
    RunState,
    current_observation,
    new_observation_id,
    new_trace_id,
    sample,
)
from traceyard.capture.observation import INERT, ActiveObservation, InertObservation
from traceyard.config import Settings, load_settings
from traceyard.cost.usage import normalize_usage
from traceyard.model import (
    Entity,
    Event,
    ObservationType,
    ScoreDataType,
    ScoreSource,
    datetime_to_ns,
    score_value_fields,
)
from traceyard.pipeline.queue import EventQueue
from traceyard.pipeline.routing import open_sink, sink_stats
from traceyard.pipeline.sink import Sink
from traceyard.pipeline.writer import Writer
from traceyard.store.base import Store

if TYPE_CHECKING:
    from traceyard.capture.langchain import TraceyardCallbackHandler

_DEFAULT_STOP_TIMEOUT = 30.0
_ATEXIT_STOP_TIMEOUT = 10.0


class TracerStats(BaseModel):
    """Counters of a tracer; ``processed + dropped + sampled_out`` equals what was emitted."""

    events_processed: int
    events_dropped: int
    events_sampled_out: int
    runs_throttled: int
    last_write_latency_ms: float | None
    p99_write_latency_ms: float | None
    #: preparing a batch (merging, JSON, compression) before its transaction
    p99_prepare_latency_ms: float | None = None
    queue_depth: int
    queue_max: int
    batches_written: int
    internal_errors: int
    last_error: str | None
    remote: dict[str, Any] | None = None
    forwarding: dict[str, dict[str, Any]] = {}


class Tracer:
    """Captures LLM and agent runs; see the README for the one-line set-ups."""

    def __init__(self, settings: Settings, store_factory: Callable[[], Store] | None = None):
        """Prefer :meth:`create`; this wires a tracer from already-validated settings."""
        self.settings = settings
        self.project = settings.project
        self.enabled = settings.enabled
        self._sample_rate = settings.sample_rate
        self._cap = settings.per_run_event_cap
        self._count_lock = threading.Lock()
        self.events_sampled_out = 0
        self.runs_throttled = 0
        self._stopped = False
        self._handler: TraceyardCallbackHandler | None = None
        self.server: Any = None  # the embedded server, when one runs (traceyard.server)
        self.store: Store | None = None  # the local store; None when not storing locally
        self._sink: Sink | None = None
        self._store_factory = store_factory
        self._queue = EventQueue(settings.queue_maxsize, settings.batch_size)
        self._writer: Writer | None = None
        if self.enabled:
            self._start_pipeline()
            _register_lifecycle_hooks(self)

    @classmethod
    def create(cls, **overrides: Any) -> Tracer:
        """Build a running tracer. Arguments override ``TRACEYARD_*`` variables and defaults;
        a bad value raises :class:`~traceyard.errors.ConfigError` naming what to fix."""
        settings = load_settings(**overrides)
        tracer = cls(settings)
        if tracer.enabled and settings.start_server and tracer.store is not None:
            with guard.guarded("starting the embedded server"):
                _start_embedded_server(tracer)
        return tracer

    #: ``with Tracer.session(...) as tracer`` / ``async with ...``: create on enter, stop on exit.
    session = create

    def _start_pipeline(self, reuse_sink: bool = False) -> None:
        if not (reuse_sink and self._sink is not None):
            self.store, self._sink = open_sink(self.settings, self._store_factory)
        self._queue = EventQueue(self.settings.queue_maxsize, self.settings.batch_size)
        self._writer = Writer(
            self._queue,
            self._sink,
            project=self.project,
            batch_timeout=self.settings.worker_batch_timeout,
            capture_content=self.settings.capture_content,
        )
        self._writer.start()

    # ------------------------------------------------------------------ emitting (hot path)

    def emit(self, run: RunState, event: Event) -> None:
        """Queue one event of ``run``: sampled, capped, never blocking, never raising."""
        if self._stopped:  # nothing drains the queue any more: count it as dropped
            self._queue.drop(run.trace_id)
            return
        if not run.sampled:
            with self._count_lock:
                self.events_sampled_out += 1
            return
        run.events += 1
        if run.events > self._cap:
            if not run.throttled:
                run.throttled = True
                with self._count_lock:
                    self.runs_throttled += 1
            self._queue.drop(run.trace_id)
            return
        self._queue.put(event)

    def submit(self, events: Sequence[Event]) -> bool:
        """Queue already-translated events (ingestion edges): all of them, or none when the
        queue lacks room. Not sampled or capped: the sender decided what to send."""
        if not self.enabled or self._stopped:
            return False
        return self._queue.put_batch(events)

    def emit_trace(self, run: RunState, attributes: dict[str, Any]) -> None:
        """Queue trace-level attributes of ``run``."""
        self.emit(run, Event(Entity.TRACE, run.trace_id, run.trace_id, run.project, attributes))

    def new_run(self, trace_id: str | None = None) -> RunState:
        """State for a new root run, with its sampling decided once, here."""
        return RunState(trace_id or new_trace_id(), self.project, sample(self._sample_rate))

    def start_observation(
        self,
        name: str,
        obs_type: ObservationType | str = ObservationType.SPAN,
        *,
        parent: ActiveObservation | None = None,
        observation_id: str | None = None,
        start_time: int | None = None,
        **fields: Any,
    ) -> ActiveObservation:
        """Start an observation under ``parent`` (default: the current one, else a new trace)."""
        if not isinstance(obs_type, ObservationType):
            obs_type = ObservationType(obs_type)
        return self._open(name, obs_type, fields, parent, observation_id, start_time)

    def _open(
        self,
        name: str,
        obs_type: ObservationType,
        fields: dict[str, Any],
        parent: ActiveObservation | None = None,
        observation_id: str | None = None,
        start_time: int | None = None,
    ) -> ActiveObservation:
        """The hot path behind span/generation/event: ``fields`` is owned by the event."""
        if parent is None:
            parent = current_observation.get() or _langchain_parent(self)
        if parent is not None:
            run, parent_id = parent.run, parent.id
        else:
            run, parent_id = self.new_run(), None
        observation = ActiveObservation(
            self, run, observation_id or new_observation_id(), parent_id, obs_type, name
        )
        start = start_time or time.time_ns()
        if "usage" in fields:
            fields["usage"] = normalize_usage(fields["usage"])
        if parent_id is None:
            self.emit_trace(run, {"name": name, "input": fields.get("input")})
        fields["parent_id"] = parent_id
        fields["type"] = obs_type
        fields["name"] = name
        fields["start_time"] = start
        if obs_type is ObservationType.EVENT:
            fields["end_time"] = start
            observation._ended = True  # already complete: start == end
        self.emit(run, Event(Entity.OBSERVATION, observation.id, run.trace_id, run.project, fields))
        return observation

    # ------------------------------------------------------------------ the direct API

    def span(
        self,
        name: str,
        *,
        as_type: ObservationType | str = ObservationType.SPAN,
        parent: ActiveObservation | None = None,
        start_time: datetime | int | None = None,
        **fields: Any,
    ) -> ActiveObservation | InertObservation:
        """``with tracer.span("retrieve", input=q) as span: ... span.update(output=docs)``

        ``parent`` defaults to the current observation; ``start_time`` (a datetime or epoch
        nanoseconds) to now. Other keywords are observation fields (input, metadata, ...).
        """
        if not self.enabled or self._stopped:
            return INERT
        try:
            if not isinstance(as_type, ObservationType):
                as_type = ObservationType(as_type)
            return self._open(name, as_type, fields, parent, None, _ns(start_time))
        except Exception as exc:
            guard.report("tracer.span", exc)
            return INERT

    def generation(
        self,
        name: str,
        *,
        parent: ActiveObservation | None = None,
        start_time: datetime | int | None = None,
        **fields: Any,
    ) -> ActiveObservation | InertObservation:
        """A span of type generation: set ``model``, ``usage``, ``model_parameters`` on it."""
        return self.span(
            name,
            as_type=ObservationType.GENERATION,
            parent=parent,
            start_time=start_time,
            **fields,
        )

    def event(
        self,
        name: str,
        *,
        parent: ActiveObservation | None = None,
        start_time: datetime | int | None = None,
        **fields: Any,
    ) -> ActiveObservation | InertObservation:
        """A point-in-time observation; recorded at once (also usable in a ``with``)."""
        return self.span(
            name, as_type=ObservationType.EVENT, parent=parent, start_time=start_time, **fields
        )

    def update_trace(self, **attributes: Any) -> None:
        """Set attributes of the current trace (user_id, session_id, tags, metadata, ...)."""
        if not self.enabled:
            return
        with guard.guarded("tracer.update_trace"):
            observation = current_observation.get() or _langchain_parent(self)
            if observation is not None:
                self.emit_trace(observation.run, attributes)

    def score(
        self,
        name: str,
        value: float | bool | str,
        *,
        trace_id: str | None = None,
        observation_id: str | None = None,
        session_id: str | None = None,
        data_type: ScoreDataType | str | None = None,
        source: ScoreSource | str = ScoreSource.API,
        comment: str | None = None,
        metadata: dict[str, Any] | None = None,
        score_id: str | None = None,
    ) -> str | None:
        """Record a score for a trace, an observation or a session (default: the current
        trace). Scores are never sampled out or capped. Returns the score id."""
        if not self.enabled or self._stopped:
            return None
        try:
            current = current_observation.get()
            if trace_id is None and session_id is None and current is not None:
                trace_id = current.trace_id
            fields = score_value_fields(value, data_type)
            fields.update(
                name=name,
                observation_id=observation_id,
                session_id=session_id,
                source=ScoreSource(source),
                comment=comment,
                metadata=metadata,
                timestamp=time.time_ns(),
            )
            score_id = score_id or new_observation_id()
            self._queue.put(Event(Entity.SCORE, score_id, trace_id or "", self.project, fields))
            return score_id
        except Exception as exc:
            guard.report("tracer.score", exc)
            return None

    # ------------------------------------------------------------------ LangChain

    @property
    def handler(self) -> TraceyardCallbackHandler:
        """The LangChain callback handler: ``config={"callbacks": [tracer.handler]}``.

        A disabled tracer hands out a no-op handler with every ``ignore_*`` flag set."""
        if self._handler is None:
            from traceyard.capture.langchain import NoOpCallbackHandler, TraceyardCallbackHandler

            if not self.enabled:
                return NoOpCallbackHandler()  # type: ignore[return-value]
            self._handler = TraceyardCallbackHandler(self)
        return self._handler

    def install(self) -> Tracer:
        """Capture every LangChain run in this process, also those given no callbacks."""
        if not self.enabled or self._stopped:
            return self
        from traceyard.capture.langchain import install_handler

        install_handler(self.handler)
        _global.installed_tracer = self
        return self

    def uninstall(self) -> None:
        if _global.installed_tracer is self:
            _global.installed_tracer = None
        if self._handler is not None:
            from traceyard.capture.langchain import uninstall_handler

            uninstall_handler(self._handler)

    # ------------------------------------------------------------------ draining and stopping

    def flush(self, timeout: float | None = _DEFAULT_STOP_TIMEOUT) -> int:
        """Block until everything queued before the call is durable; returns how many events
        were still waiting when ``timeout`` ran out (0: all durable)."""
        if self._writer is None or self._stopped:
            return 0
        return self._writer.flush(timeout)

    def stop(self, timeout: float | None = _DEFAULT_STOP_TIMEOUT) -> int:
        """Drain the queue, stop the writer and the server, close the store (idempotent).

        Returns how many queued events were lost because ``timeout`` ran out (0 normally).
        """
        if self._stopped:
            return 0
        self._stopped = True
        self.uninstall()
        lost = 0
        with guard.guarded("tracer.stop"):
            if self.server is not None:
                self.server.stop()
            if self._writer is not None:
                lost = self._writer.stop(timeout)
            if self._sink is not None:
                self._sink.close()
            if self.store is not None and self.store is not self._sink:
                self.store.close()
        return lost

    async def astop(self, timeout: float | None = _DEFAULT_STOP_TIMEOUT) -> int:
        """:meth:`stop` without blocking the event loop."""
        return await asyncio.to_thread(self.stop, timeout)

    async def aflush(self, timeout: float | None = _DEFAULT_STOP_TIMEOUT) -> int:
        return await asyncio.to_thread(self.flush, timeout)

    @property
    def stopped(self) -> bool:
        return self._stopped

    def __enter__(self) -> Tracer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Tracer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()

    # ------------------------------------------------------------------ figures

    def stats(self) -> TracerStats:
        writer = self._writer
        latencies = writer.latencies_ms if writer else ()
        return TracerStats(
            events_processed=writer.events_processed if writer else 0,
            events_dropped=self._queue.dropped,
            events_sampled_out=self.events_sampled_out,
            runs_throttled=self.runs_throttled,
            last_write_latency_ms=latencies[-1] if latencies else None,
            p99_write_latency_ms=writer.p99_latency_ms() if writer else None,
            p99_prepare_latency_ms=writer.p99_prepare_latency_ms() if writer else None,
            queue_depth=len(self._queue),
            queue_max=self._queue.maxsize,
            batches_written=writer.batches_written if writer else 0,
            internal_errors=guard.internal_errors,
            last_error=writer.last_error if writer else None,
            **(sink_stats(self._sink) if self._sink is not None else {}),
        )

    def add_batch_listener(self, listener: Callable[[Any], None]) -> None:
        """Call ``listener(events)`` after each committed batch (used by the live stream)."""
        if self._writer is not None:
            self._writer.listeners.append(listener)

    def __repr__(self) -> str:
        state = "disabled" if not self.enabled else "stopped" if self._stopped else "running"
        backend = self.store.backend if self.store else "none"
        return f"<Tracer project={self.project!r} {state} store={backend}>"

    # ------------------------------------------------------------------ fork

    def _before_fork(self) -> None:
        """Pause the writer and close store connections: none may be carried across fork."""
        if self._writer is None or self._stopped:
            return
        self._writer.write_lock.acquire()
        for target in {id(t): t for t in (self.store, self._sink) if t is not None}.values():
            before_fork = getattr(target, "before_fork", None)
            if before_fork is not None:
                before_fork()

    def _after_fork_in_parent(self) -> None:
        if self._writer is not None and self._writer.write_lock.locked():
            self._writer.write_lock.release()

    def _after_fork_in_child(self) -> None:
        """A forked child gets a tracer of its own: a fresh queue and writer thread, and its
        own store connections. The parent's queued events stay the parent's to write."""
        if self._writer is None or self._stopped:
            return
        self._writer.write_lock.release()
        self._count_lock = threading.Lock()
        self.server = None
        self._start_pipeline(reuse_sink=True)


# ---------------------------------------------------------------------- helpers


def _ns(value: datetime | int | None) -> int | None:
    """A start time given as a datetime or as epoch nanoseconds."""
    return datetime_to_ns(value) if isinstance(value, datetime) else value


def _langchain_parent(tracer: Tracer) -> ActiveObservation | None:
    """The LangChain run the caller is inside, if LangChain is in use and we traced it."""
    handler = tracer._handler
    if handler is None:
        return None
    return handler.current_run_observation()


def _start_embedded_server(tracer: Tracer) -> None:
    try:
        from traceyard.server.embedded import start_embedded
    except ImportError:  # the server is optional in a minimal install
        return
    tracer.server = start_embedded(tracer)


_live_tracers: weakref.WeakSet[Tracer] = weakref.WeakSet()
_hooks_registered = False
_hooks_lock = threading.Lock()


def _register_lifecycle_hooks(tracer: Tracer) -> None:
    """atexit stops tracers left running; a forked child re-creates their pipelines."""
    global _hooks_registered
    _live_tracers.add(tracer)
    with _hooks_lock:
        if _hooks_registered:
            return
        _hooks_registered = True
        atexit.register(_stop_all_at_exit)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(
                before=_each_tracer(Tracer._before_fork),
                after_in_parent=_each_tracer(Tracer._after_fork_in_parent),
                after_in_child=_each_tracer(Tracer._after_fork_in_child),
            )


def _stop_all_at_exit() -> None:
    for tracer in list(_live_tracers):
        with guard.guarded("atexit stop"):
            tracer.stop(_ATEXIT_STOP_TIMEOUT)


def _each_tracer(method: Callable[[Tracer], None]) -> Callable[[], None]:
    def run() -> None:
        for tracer in list(_live_tracers):
            with guard.guarded(f"fork: {method.__name__}"):
                method(tracer)

    return run

"""The handle of an open observation: ``with tracer.span(...) as span: span.update(...)``.

Entering makes it the current observation (so nested spans, decorated functions and LangChain
runs started inside become its children); leaving ends it, recording an exception as level
ERROR. Every method is guarded: a bug of ours never reaches the code being traced.
"""

from __future__ import annotations

import time
import traceback
from contextvars import Token
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

from traceyard._internal.guard import guarded, report
from traceyard.capture.context import RunState, current_observation
from traceyard.cost.usage import normalize_usage
from traceyard.model import Entity, Event, Level, ObservationType, datetime_to_ns

if TYPE_CHECKING:
    from traceyard.capture.tracer import Tracer

_TRACEBACK_LIMIT = 2000


def error_fields(exc: BaseException) -> dict[str, Any]:
    """Level ERROR with the message and a short traceback, for any capture path."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=5))
    return {
        "level": Level.ERROR,
        "status_message": f"{type(exc).__name__}: {exc}",
        "metadata": {"traceback": tb[-_TRACEBACK_LIMIT:]},
    }


class ActiveObservation:
    """An observation that has started and not yet ended."""

    __slots__ = ("_ended", "_token", "_tracer", "id", "name", "parent_id", "run", "type")

    def __init__(
        self,
        tracer: Tracer,
        run: RunState,
        observation_id: str,
        parent_id: str | None,
        obs_type: ObservationType,
        name: str,
    ) -> None:
        self._tracer = tracer
        self.run = run
        self.id = observation_id
        self.parent_id = parent_id
        self.type = obs_type
        self.name = name
        self._ended = False
        self._token: Token[ActiveObservation | None] | None = None

    @property
    def trace_id(self) -> str:
        return self.run.trace_id

    # ------------------------------------------------------------------ updates

    # try/except rather than ``with guarded()``: a generator-based context manager costs
    # about a microsecond, and these run for every event on the app thread.

    def update(self, **fields: Any) -> None:
        """Set observation fields (output, metadata, usage, model, level, ...) while open."""
        try:
            self._emit(fields)
        except Exception as exc:
            report("observation.update", exc)

    def end(self, **fields: Any) -> None:
        """End the observation (idempotent): now, or at ``end_time`` (a datetime or epoch
        nanoseconds); other ``fields`` are set at the same time."""
        try:
            if self._ended:
                return
            self._ended = True
            end_time = fields.get("end_time")
            if isinstance(end_time, datetime):
                fields["end_time"] = datetime_to_ns(end_time)
            elif end_time is None:
                fields["end_time"] = time.time_ns()
            self._emit(fields)
        except Exception as exc:
            report("observation.end", exc)

    def update_trace(self, **attributes: Any) -> None:
        """Set trace-level attributes (user_id, session_id, tags, metadata, release, ...)."""
        with guarded("observation.update_trace"):
            self._tracer.emit_trace(self.run, attributes)

    def score(self, name: str, value: float | bool | str, **kwargs: Any) -> None:
        """Score this observation."""
        self._tracer.score(name, value, trace_id=self.trace_id, observation_id=self.id, **kwargs)

    def _emit(self, fields: dict[str, Any]) -> None:
        if "usage" in fields:
            fields["usage"] = normalize_usage(fields["usage"])
        run = self.run
        if self.parent_id is None and ("input" in fields or "output" in fields):
            # a root's input and output are its trace's
            attrs = {k: fields[k] for k in ("input", "output") if fields.get(k) is not None}
            if attrs:
                self._tracer.emit_trace(run, attrs)
        self._tracer.emit(
            run, Event(Entity.OBSERVATION, self.id, run.trace_id, run.project, fields)
        )

    # ------------------------------------------------------------------ context manager

    def __enter__(self) -> ActiveObservation:
        self._token = current_observation.set(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        token = self._token
        if token is not None:
            self._token = None
            try:
                current_observation.reset(token)
            except ValueError:  # exited in another context (e.g. a generator); not our bug
                current_observation.set(None)
        if exc is None:
            self.end()
        else:
            with guarded("observation.exit"):
                self.end(**error_fields(exc))

    async def __aenter__(self) -> ActiveObservation:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


class InertObservation:
    """What a disabled or sampled-out path hands out: every method does nothing."""

    __slots__ = ()
    id = ""
    trace_id = ""
    parent_id = None
    name = ""

    def update(self, **fields: Any) -> None:
        pass

    def end(self, **fields: Any) -> None:
        pass

    def update_trace(self, **attributes: Any) -> None:
        pass

    def score(self, name: str, value: float | bool | str, **kwargs: Any) -> None:
        pass

    def __enter__(self) -> InertObservation:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    async def __aenter__(self) -> InertObservation:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass


INERT = InertObservation()

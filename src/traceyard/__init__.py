"""traceyard: local-first tracing and observability for LLM and agent applications.

import traceyard
tracer = traceyard.Tracer.create()      # SQLite in ./.traceyard, UI on 127.0.0.1:7842
tracer.install()                        # capture every LangChain run in the process
tracer.stop()                           # drain what is queued, close the store
"""

from __future__ import annotations

from typing import Any

from traceyard import _global
from traceyard._version import __version__
from traceyard.capture.observation import ActiveObservation
from traceyard.capture.observe import observe
from traceyard.capture.tracer import Tracer, TracerStats
from traceyard.config import Settings
from traceyard.errors import ConfigError, MissingExtraError, StoreError, TraceyardError
from traceyard.model import Level, ObservationType, ScoreDataType, ScoreSource


def trace(**overrides: Any) -> Tracer:
    """Create a tracer and install it: ``with traceyard.trace(): app.invoke(...)``.

    Usable as a plain call too; the tracer stops on leaving the ``with`` block, or at exit.
    """
    return Tracer.create(**overrides).install()


def update_current_trace(**attributes: Any) -> None:
    """Set attributes (user_id, session_id, tags, metadata, release, version, environment,
    name) of the trace the caller is running in."""
    tracer = _current_tracer()
    if tracer is not None:
        tracer.update_trace(**attributes)


def update_current_observation(**fields: Any) -> None:
    """Set fields (output, metadata, usage, model, level, ...) of the current observation."""
    from traceyard.capture.context import current_observation

    observation = current_observation.get()
    if observation is not None:
        observation.update(**fields)


def get_current_trace_id() -> str | None:
    from traceyard.capture.context import current_observation

    observation = current_observation.get()
    return observation.trace_id if observation is not None else None


def _current_tracer() -> Tracer | None:
    from traceyard.capture.context import current_observation

    observation = current_observation.get()
    if observation is not None:
        return observation._tracer
    return _global.installed_tracer


__all__ = [
    "ActiveObservation",
    "ConfigError",
    "Level",
    "MissingExtraError",
    "ObservationType",
    "ScoreDataType",
    "ScoreSource",
    "Settings",
    "StoreError",
    "Tracer",
    "TracerStats",
    "TraceyardError",
    "__version__",
    "get_current_trace_id",
    "observe",
    "trace",
    "update_current_observation",
    "update_current_trace",
]

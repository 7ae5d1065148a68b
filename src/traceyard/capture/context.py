"""Per-run state and the "current observation", shared by every capture path.

A root run decides once whether it is sampled; every descendant inherits that decision through
its :class:`RunState`, so a trace is either recorded whole or not at all.
"""

from __future__ import annotations

import os
import random
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from traceyard.capture.observation import ActiveObservation

_random = random.Random()
if hasattr(os, "register_at_fork"):
    # A forked child must not replay its parent's ids: reseed it from the OS.
    os.register_at_fork(after_in_child=_random.seed)


def new_trace_id() -> str:
    """32 hex characters, the size of an OTel trace id (cheaper than uuid4)."""
    return f"{_random.getrandbits(128):032x}"


def new_observation_id() -> str:
    """16 hex characters, the size of an OTel span id."""
    return f"{_random.getrandbits(64):016x}"


class RunState:
    """What one root run (one trace) shares with all its descendants."""

    __slots__ = ("events", "project", "sampled", "throttled", "trace_id")

    def __init__(self, trace_id: str, project: str, sampled: bool) -> None:
        self.trace_id = trace_id
        self.project = project
        self.sampled = sampled
        self.events = 0
        self.throttled = False


#: The observation code is running inside (decorators and context managers set it).
current_observation: ContextVar[ActiveObservation | None] = ContextVar(
    "traceyard_current_observation", default=None
)


def sample(rate: float) -> bool:
    return rate >= 1.0 or (rate > 0.0 and _random.random() < rate)

"""Keeping traceyard's own bugs out of the host program, while our tests still see them.

Every entry point the app calls (tracer API, LangChain callbacks, decorators) runs its own
work under :func:`guarded`. An exception there is counted and logged once per place, and the
app carries on. When ``TRACEYARD_STRICT`` is set (our test suite sets it) the exception is also
recorded in :data:`recorded`, and a fixture fails the test that caused it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger("traceyard")

_lock = threading.Lock()
_logged: set[str] = set()
internal_errors = 0
#: exceptions seen in strict mode (bounded); tests assert it stays empty
recorded: list[BaseException] = []
_MAX_RECORDED = 100


def strict() -> bool:
    return os.environ.get("TRACEYARD_STRICT", "") not in ("", "0", "false")


def report(where: str, exc: BaseException) -> None:
    """Count an internal error, log it the first time it happens at ``where``."""
    global internal_errors
    with _lock:
        internal_errors += 1
        first = where not in _logged
        _logged.add(where)
        if strict() and len(recorded) < _MAX_RECORDED:
            recorded.append(exc)
    if first:
        logger.warning(
            "traceyard internal error in %s (the app is not affected; further errors here "
            "are counted, not logged)",
            where,
            exc_info=exc,
        )


@contextmanager
def guarded(where: str) -> Iterator[None]:
    """Run a block of traceyard's own work; never let its exceptions escape."""
    try:
        yield
    except Exception as exc:
        report(where, exc)

"""Where the writer sends batches: anything with ``write(events)`` and ``close()``.

Every :class:`~traceyard.store.base.Store` is a sink. So are the remote-mode sender (batches
go over HTTP to a central traceyard server) and forwarders (Langfuse, OTLP); the writer does
not know which it has.

A sink may also split a write in two (:class:`StagedSink`): ``prepare`` does the CPU work
(merging, JSON, compression) and ``commit`` the I/O (one transaction). The writer then runs
the two on separate threads, so one batch is prepared while the one before it commits: most
of a commit runs in SQLite or the database driver without the GIL, and most of preparing in
Python, so the two overlap on two cores instead of taking turns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from traceyard.model import Event


@runtime_checkable
class Sink(Protocol):
    def write(self, events: Sequence[Event]) -> None:
        """Make ``events`` durable (or delivered) or raise; one call per batch.

        Raise :class:`~traceyard.errors.StoreUnavailableError` for a passing failure: the
        writer keeps the batch and retries with backoff.
        """
        ...

    def close(self) -> None: ...


@runtime_checkable
class StagedSink(Sink, Protocol):
    """A sink whose ``write(events)`` is ``commit(prepare(events))``."""

    def prepare(self, events: Sequence[Event]) -> Any:
        """Everything that needs no connection or lock, in the order batches arrive. Its
        result is given to :meth:`commit` once, or again on a retry."""
        ...

    def commit(self, prepared: Any) -> None:
        """Make a prepared batch durable, or raise as :meth:`Sink.write` does."""
        ...

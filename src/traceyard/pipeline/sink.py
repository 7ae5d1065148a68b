"""Where the writer sends batches: anything with ``write(events)`` and ``close()``.

Every :class:`~traceyard.store.base.Store` is a sink. So are the remote-mode sender (batches
go over HTTP to a central traceyard server) and forwarders (Langfuse, OTLP); the writer does
not know which it has.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

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

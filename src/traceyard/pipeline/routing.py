"""Choosing where a tracer's batches go: the local store, a remote server, forwarders.

Modes (``tracing_mode``): local only (the default), local and forward, forward only, and
remote (``endpoint`` set: batches go to a central traceyard server over HTTP).
"""

from __future__ import annotations

from collections.abc import Callable

from traceyard.config import Settings
from traceyard.pipeline.sink import Sink
from traceyard.store.base import Store


def open_sink(
    settings: Settings, store_factory: Callable[[], Store] | None = None
) -> tuple[Store | None, Sink]:
    """The local store (None when traces are not stored locally) and the writer's sink."""
    from traceyard.store.factory import open_store

    store = store_factory() if store_factory is not None else open_store(settings)
    return store, store

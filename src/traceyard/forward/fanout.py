"""The writer's sink when forwarding: the primary destination first, then every target.

Targets are offered a batch only after the primary (the local store, or the remote server)
has taken it. If the primary raises, the writer retries the batch, and the targets must not
see it twice; in forward-only mode there is no primary and the batch goes straight to them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from traceyard.forward.forwarder import Forwarder
from traceyard.model import Event
from traceyard.pipeline.sink import Sink, StagedSink

#: Seconds the targets together get to send what is queued when the tracer stops.
DEFAULT_CLOSE_TIMEOUT_S = 5.0


class FanoutSink:
    def __init__(
        self,
        primary: Sink | None,
        forwarders: Sequence[Forwarder],
        *,
        owns_primary: bool,
        close_timeout_s: float = DEFAULT_CLOSE_TIMEOUT_S,
    ) -> None:
        """``owns_primary``: close it with this sink (False for the tracer's own store, which
        the tracer closes itself)."""
        self.primary = primary
        self._primary_staged = isinstance(primary, StagedSink)
        self.forwarders = list(forwarders)
        self.owns_primary = owns_primary
        self.close_timeout_s = close_timeout_s

    def write(self, events: Sequence[Event]) -> None:
        self.commit(self.prepare(events))

    def prepare(self, events: Sequence[Event]) -> tuple[Sequence[Event], Any]:
        """The events (for the targets) and what the primary prepared of them."""
        if self._primary_staged:
            return events, self.primary.prepare(events)  # type: ignore[union-attr]
        return events, events

    def commit(self, prepared: tuple[Sequence[Event], Any]) -> None:
        events, primary_prepared = prepared
        if self._primary_staged:
            self.primary.commit(primary_prepared)  # type: ignore[union-attr]
        elif self.primary is not None:
            self.primary.write(events)
        for forwarder in self.forwarders:
            forwarder.offer(events)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the targets have sent (or given up) what they were offered."""
        deadline = None if timeout is None else time.monotonic() + timeout
        done = True
        for forwarder in self.forwarders:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            done = forwarder.flush(remaining) and done
        return done

    def close(self) -> None:
        deadline = time.monotonic() + self.close_timeout_s
        for forwarder in self.forwarders:
            forwarder.close(max(deadline - time.monotonic(), 0.1))
        if self.owns_primary and self.primary is not None:
            self.primary.close()

    def before_fork(self) -> None:
        hook = getattr(self.primary, "before_fork", None)
        if self.owns_primary and hook is not None:
            hook()

    def stats(self) -> dict[str, Any]:
        primary_stats = getattr(self.primary, "stats", None)
        return {
            "remote": primary_stats() if self.owns_primary and callable(primary_stats) else None,
            "forwarding": {f.label: f.stats() for f in self.forwarders},
        }

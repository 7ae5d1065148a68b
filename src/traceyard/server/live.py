"""The live stream: changes fanned out to WebSocket clients without ever slowing the writer.

The writer thread hands each committed batch to :meth:`LiveHub.publish_events`, which costs a
length check when nobody listens and a deque append plus (at most once per drain) a
``call_soon_threadsafe`` when someone does. Turning events into change messages, filtering
and JSON encoding happen on the server's own event loop. Each client has a bounded queue of
frames, bounded in bytes; a client that lets it fill up is disconnected (close code 1013)
instead of making anyone wait.

When the writer is another process (``traceyard serve``), :class:`StorePoller` finds changes by
polling the store: the newest traces of the listing, and the whole tree of any trace a client
follows.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool

from traceyard._internal import guard
from traceyard.model import Entity, Event, TraceDetail, ns_to_datetime
from traceyard.store.base import Store, TraceQuery

logger = logging.getLogger("traceyard.server")

Change = dict[str, Any]

#: Bytes a client may have waiting (beyond what its socket holds) before it counts as too
#: slow and is dropped: at 1,000 changes/s (~200 KB/s) about 20 s of backlog.
CLIENT_BACKLOG_BYTES = 4 << 20
#: Batches waiting for the loop; beyond it the oldest are dropped (and counted).
PENDING_BATCHES = 4096
#: Trace ids remembered to tell "created" from "updated".
_SEEN_TRACES = 100_000
#: Close code for a client dropped for being too slow ("try again later").
CLOSE_TOO_SLOW = 1013


@dataclass(frozen=True)
class LiveFilter:
    project: str | None = None
    trace_id: str | None = None

    def accepts(self, change: Change) -> bool:
        if self.project is not None and change.get("project") != self.project:
            return False
        return self.trace_id is None or change.get("trace_id") == self.trace_id


class LiveClient:
    """One subscriber: a filter and a queue of encoded frames (None = close), bounded in
    bytes so that one huge batch and many small ones count alike."""

    def __init__(self, live_filter: LiveFilter, max_bytes: int = CLIENT_BACKLOG_BYTES) -> None:
        self.filter = live_filter
        self.max_bytes = max_bytes
        self.frames: asyncio.Queue[str | None] = asyncio.Queue()
        self.backlog_bytes = 0
        self.too_slow = False

    def offer(self, frame: str) -> bool:
        """Queue a frame; False (and marked too slow) when the client has fallen behind."""
        if self.too_slow:
            return False
        if self.backlog_bytes + len(frame) > self.max_bytes and self.backlog_bytes:
            self.too_slow = True
            return False
        self.backlog_bytes += len(frame)
        self.frames.put_nowait(frame)
        return True

    async def next_frame(self) -> str | None:
        frame = await self.frames.get()
        if frame is not None:
            self.backlog_bytes -= len(frame)
        return frame

    def close(self) -> None:
        # A closing client does not need its backlog: drop it so the sentinel comes next.
        while not self.frames.empty():
            self.frames.get_nowait()
        self.backlog_bytes = 0
        self.frames.put_nowait(None)


class LiveHub:
    """Subscribers and the hand-off from the writer thread to the server's loop."""

    def __init__(self) -> None:
        self.clients: set[LiveClient] = set()
        #: Backlog bound given to new clients (see :data:`CLIENT_BACKLOG_BYTES`).
        self.client_backlog_bytes = CLIENT_BACKLOG_BYTES
        self.clients_dropped = 0
        self.batches_dropped = 0
        self.changes_sent = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: deque[Sequence[Event]] = deque()
        self._scheduled = False
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._closed = False

    # ------------------------------------------------------------------ lifecycle (loop)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._closed = False

    def subscribe(self, live_filter: LiveFilter) -> LiveClient:
        client = LiveClient(live_filter, self.client_backlog_bytes)
        self.clients.add(client)
        return client

    def unsubscribe(self, client: LiveClient) -> None:
        self.clients.discard(client)

    def close(self) -> None:
        """Tell every client to close (server shutdown)."""
        self._closed = True
        for client in list(self.clients):
            client.close()

    # ------------------------------------------------------------------ writer thread side

    def publish_events(self, events: Sequence[Event]) -> None:
        """Batch listener for the writer thread: O(1), never blocks."""
        loop = self._loop
        if not self.clients or loop is None or self._closed:
            return
        if len(self._pending) >= PENDING_BATCHES:
            self._pending.popleft()
            self.batches_dropped += 1
        self._pending.append(events)
        if not self._scheduled:
            self._scheduled = True
            try:
                loop.call_soon_threadsafe(self._drain)
            except RuntimeError:  # the loop is closed: the server is stopping
                self._scheduled = False

    # ------------------------------------------------------------------ loop side

    def _drain(self) -> None:
        self._scheduled = False  # before draining: a batch appended from now on reschedules
        with guard.guarded("live stream"):
            changes: list[Change] = []
            while self._pending:
                changes.extend(self.changes_from_events(self._pending.popleft()))
            self.publish(changes)

    def publish(self, changes: list[Change]) -> None:
        """Fan changes out to the clients whose filter accepts them (on the loop)."""
        if not changes or not self.clients:
            return
        shared: str | None = None
        for client in list(self.clients):
            if client.filter == LiveFilter():
                if shared is None:
                    shared = _frame(changes)
                frame, count = shared, len(changes)
            else:
                selected = [c for c in changes if client.filter.accepts(c)]
                if not selected:
                    continue
                frame, count = _frame(selected), len(selected)
            if client.offer(frame):
                self.changes_sent += count
            else:
                self.drop(client)

    def drop(self, client: LiveClient) -> None:
        if client in self.clients:
            self.clients.discard(client)
            self.clients_dropped += 1
            logger.warning("live stream: dropped a client that could not keep up")
        client.close()

    def changes_from_events(self, events: Iterable[Event]) -> list[Change]:
        """Committed events → change messages: one per trace touched, then one per
        observation and score event. Payloads stay out: a client fetches what it shows."""
        traces: dict[str, Change] = {}
        changes: list[Change] = []
        for event in events:
            trace_id = event.trace_id
            if trace_id and trace_id not in traces:
                traces[trace_id] = {
                    "type": "trace",
                    "action": self._trace_action(trace_id),
                    "trace_id": trace_id,
                    "project": event.project,
                }
            fields = event.fields
            if event.entity is Entity.TRACE:
                if fields.get("name") is not None:
                    traces[trace_id]["name"] = fields["name"]
                continue
            if event.entity is Entity.OBSERVATION:
                ended = fields.get("end_time") is not None
                change: Change = {
                    "type": "observation",
                    "action": "ended"
                    if ended
                    else ("started" if "start_time" in fields else "updated"),
                    "id": event.id,
                    "trace_id": trace_id,
                    "project": event.project,
                }
                for key in ("parent_id", "name", "level", "model"):
                    if fields.get(key) is not None:
                        change[key] = getattr(fields[key], "value", fields[key])
                if "type" in fields:
                    change["observation_type"] = getattr(fields["type"], "value", fields["type"])
                for key in ("start_time", "end_time"):
                    if isinstance(fields.get(key), int):
                        change[key] = ns_to_datetime(fields[key])  # orjson writes ISO 8601
                changes.append(change)
            else:
                score: Change = {
                    "type": "score",
                    "action": "added",
                    "id": event.id,
                    "trace_id": trace_id or None,
                    "project": event.project,
                }
                for key in ("name", "value", "string_value", "observation_id", "session_id"):
                    if fields.get(key) is not None:
                        score[key] = fields[key]
                changes.append(score)
        return [*traces.values(), *changes]

    def _trace_action(self, trace_id: str) -> str:
        seen = self._seen
        if trace_id in seen:
            seen.move_to_end(trace_id)
            return "updated"
        seen[trace_id] = None
        if len(seen) > _SEEN_TRACES:
            seen.popitem(last=False)
        return "created"


def _frame(changes: list[Change]) -> str:
    # orjson: a frame of a thousand changes encodes ~10x faster than with json, and this runs
    # on the loop that shares the GIL with the writer.
    return orjson.dumps({"type": "changes", "changes": changes}).decode()


# ---------------------------------------------------------------------- polling (serve)


class StorePoller:
    """Finds changes by reading the store, for writers in other processes.

    Each round (only while clients are connected) reads the newest ``head`` traces and
    compares them with the previous round, and re-reads each trace a client follows
    (``trace_id`` filter, at most ``max_followed``) to report its observations and scores.
    """

    def __init__(
        self,
        store: Store,
        hub: LiveHub,
        interval_s: float = 1.0,
        head: int = 200,
        max_followed: int = 20,
    ) -> None:
        self.store = store
        self.hub = hub
        self.interval_s = interval_s
        self.head = head
        self.max_followed = max_followed
        #: Rounds done while clients were connected (the first one takes the baseline).
        self.rounds = 0
        self._traces: dict[str, tuple[Any, ...]] | None = None
        self._trees: dict[str, dict[str, tuple[Any, ...]]] = {}

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            if not self.hub.clients:
                self._traces, self._trees = None, {}
                continue
            with guard.guarded("live poller"):
                await self.poll_once()

    async def poll_once(self) -> None:
        changes = await run_in_threadpool(self._head_changes)
        followed = sorted({c.filter.trace_id for c in self.hub.clients if c.filter.trace_id})
        for trace_id in followed[: self.max_followed]:
            detail = await run_in_threadpool(self.store.get_trace, trace_id)
            changes.extend(self._tree_changes(trace_id, detail))
        self._trees = {k: v for k, v in self._trees.items() if k in followed}
        self.hub.publish(changes)
        self.rounds += 1

    def _head_changes(self) -> list[Change]:
        page = self.store.list_traces(TraceQuery(limit=self.head))
        current = {
            t.id: (
                t.name,
                t.status,
                t.end_time,
                t.observation_count,
                t.total_cost,
                t.error_count,
                t.project,
            )
            for t in page.data
        }
        previous, self._traces = self._traces, current
        if previous is None:
            return []  # first round: the baseline
        changes = []
        for trace_id, state in current.items():
            if previous.get(trace_id) == state:
                continue
            changes.append(
                {
                    "type": "trace",
                    "action": "updated" if trace_id in previous else "created",
                    "trace_id": trace_id,
                    "project": state[6],
                    "name": state[0],
                }
            )
        return changes

    def _tree_changes(self, trace_id: str, detail: TraceDetail | None) -> list[Change]:
        if detail is None:
            return []
        current: dict[str, tuple[Any, ...]] = {
            o.id: ("observation", o.end_time, o.level, o.name) for o in detail.observations
        }
        for s in detail.scores or ():
            current[s.id] = ("score", s.value, s.string_value, s.name)
        previous = self._trees.get(trace_id)
        self._trees[trace_id] = current
        if previous is None:
            return []
        changes: list[Change] = []
        for entity_id, state in current.items():
            old = previous.get(entity_id)
            if old == state:
                continue
            if state[0] == "score":
                changes.append(
                    {
                        "type": "score",
                        "action": "added",
                        "id": entity_id,
                        "trace_id": trace_id,
                        "project": detail.project,
                        "name": state[3],
                    }
                )
            else:
                action = "ended" if state[1] is not None else "started"
                changes.append(
                    {
                        "type": "observation",
                        "action": action,
                        "id": entity_id,
                        "trace_id": trace_id,
                        "project": detail.project,
                        "name": state[3],
                        "level": state[2].value,
                    }
                )
        return changes

"""OTLP ingestion on more than one core: worker processes that decode, translate and write.

In one process, decoding, translating and writing OTLP spans share one GIL: about 10,000
spans/s on a 2-core machine (bench/otlp_ingest.py). With ``ingest_workers = N`` (``traceyard
serve --ingest-workers N``) the server's process only reads request bodies and hands each to
one of N worker processes, which decodes it, translates it into canonical events and writes
them to the shared store in one transaction. The answer comes back after that commit, so a
2xx from a worker means durable, not queued; a full house (more requests waiting than
:attr:`IngestWorkers.max_pending`) is refused with 429, as a full queue is.

Bodies reach the workers through shared memory, one slot per request that may wait: through
the pool's pipe, a worker reading a 2 MB body holds the queue's lock meanwhile, so the other
workers waited for work half of the time.

Only ``traceyard serve`` uses workers: it already finds other processes' writes by polling
the store, and it is a process of ours to spawn from (an app's is not).
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import multiprocessing.util
import os
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.shared_memory import SharedMemory
from typing import cast

from traceyard.config import Settings
from traceyard.errors import ConfigError
from traceyard.ingest.otlp import decode_request, translate
from traceyard.store.base import Store
from traceyard.store.factory import open_store

#: Requests waiting for a worker, per worker, before more are refused (each body is at most
#: ``ingest_max_body_bytes``, 3.5 MB by default).
PENDING_PER_WORKER = 4
_START_TIMEOUT_S = 60.0


class WorkersBusy(Exception):
    """Every worker is busy and enough requests are waiting: retry later (429)."""


class WorkersUnavailable(Exception):
    """A worker process died; the pool is restarted and the request may be retried (503)."""


@dataclass(frozen=True)
class OtlpOutcome:
    """What a worker did with one OTLP request (its events are committed)."""

    spans: int
    events: int
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)


def check_settings(settings: Settings) -> None:
    """Raise :class:`ConfigError` when ``settings`` ask for workers their store cannot have."""
    url = settings.database_url
    if settings.ingest_workers and url is not None and url.startswith("memory://"):
        raise ConfigError(
            "TRACEYARD_INGEST_WORKERS / --ingest-workers needs a store that other processes "
            "can open (SQLite in data_dir, or PostgreSQL): the in-memory store lives in "
            "one process"
        )


class IngestWorkers:
    """A pool of ingestion worker processes writing to the store ``settings`` name."""

    def __init__(self, settings: Settings) -> None:
        check_settings(settings)
        self.settings = settings
        self.workers = settings.ingest_workers
        self.max_pending = PENDING_PER_WORKER * self.workers
        self._slot_bytes = settings.ingest_max_body_bytes
        self._slots = SharedMemory(create=True, size=self.max_pending * self._slot_bytes)
        self._free_slots = list(range(self.max_pending))
        self._lock = threading.Lock()
        self._pool = self._new_pool()

    def start(self) -> None:
        """Spawn the workers and wait until each has opened the store (blocking).

        A worker answers only once its initializer has run; one that is up can take every
        question while another still imports, so ask until each has answered.
        """
        deadline = time.monotonic() + _START_TIMEOUT_S
        answered: set[int] = set()
        while len(answered) < self.workers:
            asked = [self._pool.submit(_ready) for _ in range(self.workers)]
            answered.update(f.result(max(0.0, deadline - time.monotonic())) for f in asked)

    async def otlp(self, body: bytes, kind: str, project: str) -> OtlpOutcome:
        """Decode, translate and write one OTLP request in a worker.

        Raises what decoding and the store raise (``OtlpDecodeError``, ``StoreError``),
        :class:`WorkersBusy` or :class:`WorkersUnavailable`.
        """
        with self._lock:
            if not self._free_slots:
                raise WorkersBusy(
                    f"all {self.workers} ingest workers are busy and "
                    f"{self.max_pending - self.workers} more requests are waiting"
                )
            slot = self._free_slots.pop()
            pool = self._pool
        start = slot * self._slot_bytes
        _view(self._slots)[start : start + len(body)] = body
        try:
            future: Future[OtlpOutcome] = pool.submit(_ingest_otlp, start, len(body), kind, project)
        except BrokenProcessPool:
            self._release(slot)
            self._restart(pool)
            raise WorkersUnavailable("an ingest worker process stopped; retry") from None
        # Free the slot when the worker is done with it, not when this request is (a client
        # that hangs up cancels the await, not the worker).
        future.add_done_callback(lambda _: self._release(slot))
        try:
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:
            self._restart(pool)
            raise WorkersUnavailable("an ingest worker process stopped; retry") from None

    def close(self) -> None:
        """Let the workers finish the requests they have, then stop them (blocking)."""
        self._pool.shutdown(wait=True)
        self._slots.close()
        self._slots.unlink()

    def _release(self, slot: int) -> None:
        with self._lock:
            self._free_slots.append(slot)

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn: the server's process has threads (event loop, writer) that fork would copy
        # mid-work.
        return ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(self.settings, self._slots.name),
        )

    def _restart(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is not broken:
                return  # another request restarted it already
            self._pool = self._new_pool()
        broken.shutdown(wait=False)


def _view(memory: SharedMemory) -> memoryview:
    return cast("memoryview", memory.buf)  # None only once closed


# ------------------------------------------------------------------------------ in a worker

_store: Store | None = None
_bodies: SharedMemory | None = None


def _start_worker(settings: Settings, bodies: str) -> None:
    global _store, _bodies
    # Ctrl-C reaches the whole process group; the server shuts its workers down in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _bodies = SharedMemory(bodies)
    _store = open_store(settings)
    multiprocessing.util.Finalize(None, _store.close, exitpriority=10)
    # What startup built stays to the end: keep it out of the collector's generations, as
    # serve_forever does.
    gc.collect()
    gc.freeze()


def _ready() -> int:
    time.sleep(0.01)  # leave the next question to another worker
    return os.getpid()


def _ingest_otlp(start: int, length: int, kind: str, project: str) -> OtlpOutcome:
    if _store is None or _bodies is None:
        raise RuntimeError("ingest worker without a store")
    decoded = decode_request(bytes(_view(_bodies)[start : start + length]), kind)
    events = translate(decoded.spans, project)
    if events:
        _store.write(events)
    return OtlpOutcome(len(decoded.spans), len(events), decoded.rejected, decoded.reasons)

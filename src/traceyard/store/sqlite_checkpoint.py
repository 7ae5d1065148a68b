"""WAL checkpoints on a thread of their own, so that no commit waits for one.

In WAL mode a commit appends pages to the ``-wal`` file and a checkpoint copies them back
into the database file (with ``synchronous=NORMAL`` it also fsyncs both: that is where the
disk is waited for). SQLite's automatic checkpoint runs inside the commit that crosses
``wal_autocheckpoint``, which then takes 150-300 ms instead of 20 (bench/writer_ceiling.py,
2,000-event batches). So the writer's connection turns the automatic checkpoint off and this
thread runs ``PASSIVE`` checkpoints a little after commits instead: they copy frames while
the writer goes on appending, and wait for nothing.

A passive checkpoint does not restart the WAL itself; the next write transaction does, and
only when every frame has been copied and no reader still uses them. Under a steady stream of
commits that moment might never come and the file would grow without end, so once the WAL
holds ``restart_frames`` frames the checkpointer catches up (each pass copies what was
committed during the one before, so they get shorter) and then copies the last few frames
with every writer held back: this process's commits at :meth:`Checkpointer.gate` (they wait
there without polling), other processes' by SQLite, whose ``RESTART`` checkpoint holds the
write lock until the frames are copied and the readers have left them. A pause of one small
checkpoint, after which the next commit starts the WAL from the beginning again. (With the
gate alone, commits from a second process, `traceyard serve --ingest-workers` say, kept
appending: the WAL grew to 2.9 GB in 50 s and each commit got slower with it.)
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from traceyard._internal import guard

#: Seconds between two passes at most as often: a page that many batches touch (random ids
#: spread them over the indexes) is copied once per pass, not once per commit.
MIN_INTERVAL_S = 0.25
#: Frames (pages) in the WAL past which the checkpointer makes the next commit restart it:
#: 64 MiB of 4 KiB pages, SQLite's automatic threshold as the store set it before.
RESTART_FRAMES = 16_384
#: Before holding commits back, passes catch up until one leaves at most this many frames
#: (1 MiB) for the held pass, or this many passes were made.
GATED_TAIL_FRAMES = 256
CATCH_UP_PASSES = 8
#: How long the held pass waits for another process's commit or a reader to finish before
#: giving up until the next pass: commits take tens of ms, and this process's own commits
#: wait at the gate meanwhile.
RESTART_WAIT_MS = 250


class Checkpointer:
    """Checkpoints one SQLite database after its commits, on a daemon thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.restart_frames = RESTART_FRAMES
        self.passes = 0
        self.restarts = 0
        self._wake = threading.Event()
        self._closed = False
        # Commits hold the gate; the checkpointer takes it for the pass before a restart.
        self._gate = threading.Lock()
        # Held for a whole pass; fork() takes it so no connection is open across the fork.
        self._busy = threading.RLock()
        self._held_for_fork = False
        self._thread: threading.Thread | None = None
        self._pid = 0
        _live.add(self)

    @contextmanager
    def gate(self) -> Iterator[None]:
        """Held by a commit: waits while the checkpointer makes the WAL restartable."""
        with self._gate:
            yield

    def committed(self) -> None:
        """A commit added frames: checkpoint them soon (starts the thread on first use)."""
        if self._closed:
            return
        if self._pid != os.getpid():  # first use, or a forked child: threads don't survive
            self._pid = os.getpid()
            self._thread = threading.Thread(
                target=self._run, name="traceyard-checkpoint", daemon=True
            )
            self._thread.start()
        self._wake.set()

    def close(self) -> None:
        """Stop the thread after its current pass (closing the store checkpoints the rest)."""
        self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(30)

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        while True:
            self._wake.wait()
            if self._closed:
                return
            started = time.monotonic()
            self._wake.clear()
            with self._busy, guard.guarded("sqlite checkpoint"):
                if self._closed:
                    return
                self._pass()
            time.sleep(max(0.0, MIN_INTERVAL_S - (time.monotonic() - started)))

    def _pass(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            frames = _checkpoint(conn)
            self.passes += 1
            if frames >= self.restart_frames:
                # Catch up with the commits made during each pass until they are few...
                for _ in range(CATCH_UP_PASSES):
                    before, frames = frames, _checkpoint(conn)
                    if frames - before <= GATED_TAIL_FRAMES:
                        break
                with self._gate:  # ...then copy the last of them with no commit appending
                    if _restart(conn):
                        self.restarts += 1
        finally:
            conn.close()

    # ------------------------------------------------------------------ fork

    def _before_fork(self) -> None:
        self._busy.acquire()
        self._held_for_fork = True

    def _after_fork_in_parent(self) -> None:
        if self._held_for_fork:
            self._held_for_fork = False
            self._busy.release()

    def _after_fork_in_child(self) -> None:
        self._held_for_fork = False
        self._busy = threading.RLock()
        self._gate = threading.Lock()
        self._wake = threading.Event()
        self._thread = None


def _checkpoint(conn: sqlite3.Connection) -> int:
    """One passive checkpoint; returns the frames in the WAL (-1 if it is not in WAL mode)."""
    _busy, frames, _copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(frames)


def _restart(conn: sqlite3.Connection) -> bool:
    """A checkpoint that holds every writer off (other processes' too) until all frames are
    copied and no reader uses them; True when done, so the next commit restarts the WAL."""
    conn.execute(f"PRAGMA busy_timeout={RESTART_WAIT_MS}")
    busy, _frames, _copied = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
    return not busy


_live: weakref.WeakSet[Checkpointer] = weakref.WeakSet()


def _each(method_name: str) -> Callable[[], None]:
    def run() -> None:
        for checkpointer in list(_live):
            getattr(checkpointer, method_name)()

    return run


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_each("_before_fork"),
        after_in_parent=_each("_after_fork_in_parent"),
        after_in_child=_each("_after_fork_in_child"),
    )

"""PostgreSQL goes away in the middle of a run and comes back: the app keeps running, the writer
retries with backoff, the bounded queue counts what it drops, and writing resumes by itself.
Nothing is lost silently: what the database kept plus what was counted as dropped is exactly
what the app emitted.

This stops and starts the machine's real PostgreSQL cluster (pg_ctlcluster), and always
starts it again, even when the test fails.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from store_contract import pg_connect, pg_schema

from traceyard.capture.tracer import Tracer

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _cluster() -> tuple[str, str]:
    versions = sorted(os.listdir("/etc/postgresql"), key=lambda v: float(v))
    version = versions[-1]
    return version, sorted(os.listdir(Path("/etc/postgresql") / version))[0]


def _pg_ctl(action: str) -> None:
    version, name = _cluster()
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, action],
        check=True,
        capture_output=True,
        timeout=60,
    )


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def _server_up() -> bool:
    try:
        pg_connect().close()
    except BaseException:
        return False
    return True


@pytest.fixture
def restartable_server() -> Iterator[None]:
    """The real cluster, started again at the end whatever happened."""
    try:
        yield
    finally:
        if not _server_up():
            _pg_ctl("start")


def _stored_ticks(url: str) -> set[str]:
    with pg_connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT id FROM scores").fetchall()}


def test_the_writer_rides_out_a_server_restart(restartable_server: None) -> None:
    with pg_schema() as url:
        tracer = Tracer.create(
            database_url=url,
            start_server=False,
            worker_batch_timeout=0.05,
            queue_maxsize=1_000,  # small, so the outage overflows it and drops get counted
        )
        emitted: list[str] = []
        stop = threading.Event()

        def app() -> None:
            # One score = one event = one row: what was kept can be counted exactly.
            i = 0
            while not stop.is_set():
                for _ in range(20):
                    score_id = f"tick-{i:07d}"
                    tracer.score("tick", i, session_id="outage", score_id=score_id)
                    emitted.append(score_id)
                    i += 1
                time.sleep(0.005)

        worker = threading.Thread(target=app)
        worker.start()
        try:
            _wait_for(lambda: len(_stored_ticks(url)) > 500, "the first rows")
            _pg_ctl("stop")
            _wait_for(lambda: tracer.stats().events_dropped > 0, "the queue to overflow")
            stats = tracer.stats()
            assert stats.last_error is not None and "unavailable" in stats.last_error
            assert worker.is_alive()  # the app never noticed
            _pg_ctl("start")
            after_restart = len(emitted)
            _wait_for(
                lambda: f"tick-{after_restart + 500:07d}" in _stored_ticks(url),
                "writing to resume by itself",
            )
        finally:
            stop.set()
            worker.join(timeout=30)
            lost_at_stop = tracer.stop(60)
        stats = tracer.stats()
        kept = _stored_ticks(url)
        assert lost_at_stop == 0
        assert kept <= set(emitted)
        assert len(kept) == stats.events_processed
        assert len(kept) + stats.events_dropped == len(emitted)
        assert stats.events_dropped > 0

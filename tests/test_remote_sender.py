"""Remote mode in one process: a tracer (or the sink alone) sending to a live central server
over loopback."""

from __future__ import annotations

import multiprocessing
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ingest_support import wait_for
from remote_support import CentralServer, central_server, clean_routing_env

from traceyard.capture.tracer import Tracer
from traceyard.errors import ConfigError, StoreUnavailableError
from traceyard.model import Entity, Event, ObservationType
from traceyard.pipeline.routing import describe, sink_stats
from traceyard.remote.sender import RemoteConfig, RemoteSink
from traceyard.remote.wire import HOST_KEY, PID_KEY

TOKEN = "c" * 16 + "0123456789abcdef"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[CentralServer]:
    with central_server(tmp_path / "central", token=TOKEN) as running:
        yield running


def remote_tracer(url: str, token: str | None = TOKEN, **overrides: Any) -> Tracer:
    """``Tracer.create()`` with only the environment saying "remote": app code unchanged."""
    with clean_routing_env():
        os.environ["TRACEYARD_ENDPOINT"] = url
        if token:
            os.environ["TRACEYARD_AUTH_TOKEN"] = token
        return Tracer.create(start_server=False, worker_batch_timeout=0.05, **overrides)


def _events(n: int, trace_id: str = "d" * 32, payload: str = "x") -> list[Event]:
    return [
        Event(
            Entity.OBSERVATION,
            f"{i:016x}",
            trace_id,
            "default",
            {
                "type": ObservationType.EVENT,
                "name": f"e{i}",
                "start_time": 1,
                "end_time": 1,
                "input": payload,
            },
        )
        for i in range(n)
    ]


def test_the_app_code_is_unchanged_and_everything_arrives(server: CentralServer) -> None:
    tracer = remote_tracer(server.url, project="shop")
    assert tracer.store is None  # remote mode opens no local store
    with tracer.span("checkout", input={"cart": 3}) as root:
        tracer.update_trace(user_id="u1", session_id="s1", tags=["prod"], metadata={"k": "v"})
        with tracer.generation("llm", model="gpt-4o-mini", input="hi") as llm:
            llm.update(output="hello", usage={"prompt_tokens": 12, "completion_tokens": 3})
        tracer.score("quality", 0.9)
        root.update(output="done")
    assert tracer.flush(10) == 0
    stats = sink_stats(tracer._sink)["remote"]
    assert stats["sent"] == tracer.stats().events_processed > 0
    assert stats["failed"] == 0 and stats["last_error"] is None
    tracer.stop()

    assert server.tracer is not None and server.tracer.store is not None
    assert server.tracer.flush(10) == 0
    store = server.tracer.store
    trace = store.get_trace(root.trace_id)
    assert trace is not None
    assert (trace.project, trace.name, trace.user_id, trace.session_id) == (
        "shop",
        "checkout",
        "u1",
        "s1",
    )
    assert trace.tags == ["prod"] and trace.metadata["k"] == "v"
    assert trace.metadata[HOST_KEY] == socket.gethostname()
    assert trace.metadata[PID_KEY] == os.getpid()
    assert trace.output == "done"
    by_name = {o.name: o for o in trace.observations}
    assert by_name["llm"].parent_id == root.id
    assert by_name["llm"].usage == {"input": 12, "output": 3, "total": 15}
    assert by_name["llm"].cost["total"] > 0  # priced by the server's store
    assert [s.name for s in store.list_scores(trace_id=root.trace_id).data] == ["quality"]


def test_describe_says_remote_and_where(server: CentralServer) -> None:
    with clean_routing_env():
        os.environ["TRACEYARD_ENDPOINT"] = server.url + "/"
        from traceyard.config import load_settings

        assert describe(load_settings()) == {
            "tracing_mode": "remote",
            "storage": "remote",
            "endpoint": server.url,
            "forwarding": [],
        }
        os.environ["TRACEYARD_ENDPOINT"] = "tracing.internal:7842"
        with pytest.raises(ConfigError, match="TRACEYARD_ENDPOINT"):
            Tracer.create(start_server=False)


def test_a_wrong_token_keeps_retrying_then_counts_the_loss(server: CentralServer) -> None:
    tracer = remote_tracer(server.url, token="w" * 32)
    for i in range(5):
        tracer.event(f"lost {i}")
    # Never durable: the server refuses the token, again and again.
    wait_for(lambda: sink_stats(tracer._sink)["remote"]["failed"] >= 2, what="two refusals")
    stats = sink_stats(tracer._sink)["remote"]
    assert stats["sent"] == 0
    assert "401" in stats["last_error"] and "TRACEYARD_AUTH_TOKEN" in stats["last_error"]
    tracer.stop(timeout=0.5)
    emitted = 10  # each root event: a trace event and an observation event
    # The writer counts the batch it held as lost once its last retry ends (writer.py's
    # stop() may return before that: see the report).
    wait_for(lambda: tracer.stats().events_dropped == emitted, what="the loss to be counted")
    assert tracer.stats().events_processed == 0
    assert server.observation_ids() == []


def test_429_retry_after_paces_the_next_attempt(tmp_path: Path) -> None:
    with central_server(tmp_path / "busy", queue_maxsize=5) as busy:
        sink = RemoteSink(RemoteConfig(busy.url))
        batch = _events(10)  # more than the server's whole queue: refused every time
        with pytest.raises(StoreUnavailableError, match="429"):
            sink.write(batch)
        first = sink.stats()
        assert first["failed"] == 1 and first["requests"] == 0
        assert 0 < first["waiting_s"] <= 1.0  # the server's Retry-After: 1
        with pytest.raises(StoreUnavailableError, match="next attempt in"):
            sink.write(batch)  # too early: refused here, without a request
        assert sink.stats()["failed"] == 1
        sink.close()


def test_413_splits_and_an_oversized_event_is_cut_not_lost(server: CentralServer) -> None:
    # Uncompressed 4 MB requests: above the server's 1 MiB body limit, so it answers 413.
    sink = RemoteSink(
        RemoteConfig(server.url, token=TOKEN, compress=False, max_request_bytes=4_000_000)
    )
    batch = _events(40, payload="y" * 60_000)  # ~2.4 MB in one request
    sink.write(batch)
    huge = _events(1, trace_id="e" * 32, payload="z" * 3_000_000)
    sink.write(huge)
    stats = sink.stats()
    assert stats["sent"] == 41 and stats["truncated"] == 1
    assert stats["failed"] >= 2  # the 413s that led to the splits
    sink.close()
    assert sorted(server.observation_ids()) == sorted({e.id for e in batch + huge})
    assert server.tracer is not None and server.tracer.store is not None
    cut = server.tracer.store.get_observation(huge[0].id)
    assert cut is not None and "cut to fit the remote limit" in cut.input


def test_a_batch_sent_twice_is_stored_once_and_unchanged(server: CentralServer) -> None:
    """What happens when a batch is retried after a timeout the server had in fact stored."""
    sink = RemoteSink(RemoteConfig(server.url, token=TOKEN))
    trace_id = "f" * 32
    batch = [
        Event(
            Entity.TRACE,
            trace_id,
            trace_id,
            "default",
            {"name": "t", "tags": ["a"], "metadata": {"m": 1}},
        ),
        *_events(20, trace_id=trace_id),
    ]
    sink.write(batch)
    assert server.tracer is not None and server.tracer.store is not None
    assert server.tracer.flush(10) == 0
    before = server.tracer.store.get_trace(trace_id)
    sink.write(list(batch))  # the same events again
    assert server.tracer.flush(10) == 0
    after = server.tracer.store.get_trace(trace_id)
    assert before is not None and after == before
    assert sorted(server.observation_ids()) == sorted(e.id for e in batch[1:])
    sink.close()


def _child_work(n: int) -> int:
    """In a forked pool worker: trace with the tracer inherited from the parent."""
    from traceyard._global import installed_tracer

    tracer = installed_tracer
    assert tracer is not None
    for i in range(n):
        with tracer.span(f"child-{os.getpid()}-{i}"):
            tracer.event("step")
    assert tracer.flush(10) == 0  # pool workers exit without atexit hooks
    return os.getpid()


def test_a_fork_pool_sends_from_every_worker_with_its_pid(server: CentralServer) -> None:
    tracer = remote_tracer(server.url).install()
    with tracer.span("parent"):
        pass
    assert tracer.flush(10) == 0
    with multiprocessing.get_context("fork").Pool(3) as pool:
        pids = set(pool.map(_child_work, [4] * 6, chunksize=1))
    with tracer.span("parent-after"):
        pass
    tracer.stop()

    assert server.tracer is not None and server.tracer.store is not None
    assert server.tracer.flush(10) == 0
    from traceyard.store.base import TraceQuery

    traces = server.tracer.store.list_traces(TraceQuery(limit=100)).data
    by_pid: dict[int, int] = {}
    for trace in traces:
        by_pid[trace.metadata[PID_KEY]] = by_pid.get(trace.metadata[PID_KEY], 0) + 1
        assert trace.observation_count == (1 if trace.name.startswith("parent") else 2)
    assert by_pid.pop(os.getpid()) == 2
    assert set(by_pid) == pids and sum(by_pid.values()) == 24
    assert len(server.observation_ids()) == len(set(server.observation_ids())) == 2 + 24 * 2

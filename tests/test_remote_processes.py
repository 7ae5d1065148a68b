"""Remote mode from many real processes at once, and through a server restart."""

from __future__ import annotations

from pathlib import Path

import pytest
from remote_support import central_server, client_env, read_message, spawn_client, tell

from traceyard.model import TraceStatus
from traceyard.remote.wire import HOST_KEY, PID_KEY

#: A client: traces shaped like an agent run, through the public API only.
AGENT_CLIENT = """
    import json, os, traceyard
    tracer = traceyard.Tracer.create()
    traces = {}
    for i in range(int(os.environ["N_TRACES"])):
        with tracer.span(f"run {os.getpid()} {i}", as_type="agent") as root:
            tracer.update_trace(user_id=f"user-{i % 3}")
            with tracer.span("retrieve", as_type="retriever") as retrieve:
                pass
            with tracer.generation("llm", model="gpt-4o-mini") as llm:
                llm.update(usage={"input_tokens": 5, "output_tokens": 2})
            note = tracer.event("note")
        traces[root.trace_id] = {
            root.id: None, retrieve.id: root.id, llm.id: root.id, note.id: root.id
        }
    lost = tracer.stop()
    stats = tracer.stats()
    print(json.dumps({"pid": os.getpid(), "traces": traces, "lost": lost,
                      "dropped": stats.events_dropped}))
"""


@pytest.mark.slow
def test_many_processes_every_observation_arrives_exactly_once(tmp_path: Path) -> None:
    with central_server(tmp_path / "central") as server:
        env = {**client_env(server.url), "N_TRACES": "40"}
        clients = [spawn_client(AGENT_CLIENT, env) for _ in range(6)]
        reports = [read_message(client) for client in clients]
        for client in clients:
            assert client.wait(30) == 0

        stored = server.observation_ids()
        assert len(stored) == len(set(stored)), "an observation was stored twice"
        expected = {
            obs_id for report in reports for tree in report["traces"].values() for obs_id in tree
        }
        assert set(stored) == expected and len(expected) == 6 * 40 * 4
        assert server.tracer is not None and server.tracer.store is not None
        store = server.tracer.store
        for report in reports:
            assert report["lost"] == 0 and report["dropped"] == 0
            for trace_id, tree in report["traces"].items():
                trace = store.get_trace(trace_id)
                assert trace is not None
                assert trace.metadata[PID_KEY] == report["pid"]
                assert isinstance(trace.metadata[HOST_KEY], str)
                assert trace.status is TraceStatus.OK and trace.user_id is not None
                assert {o.id: o.parent_id for o in trace.observations} == tree


#: A client that traces in three phases, told by the test when to move on: before the
#: server stops, while it is down, after it is back. Each event observation is exactly one
#: event on the queue, so "kept + dropped == emitted" can be checked exactly.
PHASED_CLIENT = """
    import json, os, sys, traceyard
    tracer = traceyard.Tracer.create()
    ids = []

    def emit(n):
        for _ in range(n):
            ids.append(tracer.event("tick", input="x" * 50).id)

    def say(**message):
        print(json.dumps(message), flush=True)

    with tracer.span("phased run") as root:
        emit(200)
        assert tracer.flush(30) == 0
        say(phase=1)
        sys.stdin.readline()                 # the server is down now
        emit(1000)
        say(phase=2, stats=tracer.stats().model_dump())
        sys.stdin.readline()                 # the server is back
        recovered = tracer.flush(60)         # the client recovers by itself
        emit(200)
        assert tracer.flush(30) == 0
    lost = tracer.stop()
    stats = tracer.stats()
    say(phase=3, ids=ids, root=root.id, trace=root.trace_id, recovered=recovered, lost=lost,
        dropped=stats.events_dropped, processed=stats.events_processed)
"""


@pytest.mark.slow
def test_clients_recover_from_a_server_restart_and_account_for_every_event(
    tmp_path: Path,
) -> None:
    with central_server(tmp_path / "central") as server:
        env = client_env(
            server.url, QUEUE_MAXSIZE=300, WORKER_BATCH_SIZE=100, PER_RUN_EVENT_CAP=10**6
        )
        clients = [spawn_client(PHASED_CLIENT, env) for _ in range(3)]
        assert all(read_message(c)["phase"] == 1 for c in clients)

        server.stop()  # an operator's restart: what was accepted is durable first
        for client in clients:
            tell(client, "go")
        during = [read_message(client) for client in clients]
        # Down: each client keeps at most its queue and one batch in hand, and counts the rest.
        assert all(m["stats"]["events_dropped"] >= 1000 - 300 - 100 for m in during)

        server.start()  # same port, same data
        for client in clients:
            tell(client, "go")
        finals = [read_message(client) for client in clients]
        for client in clients:
            assert client.wait(30) == 0

        stored = server.observation_ids()
        assert len(stored) == len(set(stored)), "an observation was stored twice"
        assert server.tracer is not None and server.tracer.store is not None
        for final in finals:
            assert final["recovered"] == 0 and final["lost"] == 0
            emitted = final["ids"]
            assert len(emitted) == 1400
            kept = set(emitted) & set(stored)
            assert len(kept) + final["dropped"] == len(emitted)
            assert set(emitted[:200]) <= kept and set(emitted[-200:]) <= kept
            trace = server.tracer.store.get_trace(final["trace"])
            assert trace is not None
            assert {o.id for o in trace.observations} == kept | {final["root"]}
            assert trace.status is TraceStatus.INCOMPLETE  # it lost events, and says so

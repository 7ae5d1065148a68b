"""What only the in-memory store does: a bound with least-recently-written eviction, re-runs
that replace the earlier run, "latest trace" lookups, detached copies, and thread safety.
(The shared contract runs against it in test_store_contract.py.)"""

from __future__ import annotations

import threading

from store_contract import at, obs, score, trace

from traceyard.capture.tracer import Tracer
from traceyard.config import load_settings
from traceyard.store.base import TraceQuery
from traceyard.store.factory import open_store
from traceyard.store.memory import DEFAULT_MAX_TRACES, MemoryStore


def ids(store: MemoryStore) -> set[str]:
    return {t.id for t in store.list_traces(TraceQuery(limit=1000)).data}


def test_bounded_by_max_traces_oldest_written_goes_first() -> None:
    store = MemoryStore(max_traces=3)
    for i in range(5):
        store.write([obs(f"o{i}", f"t{i}", start_time=at(i)), score(f"s{i}", f"t{i}", name="q")])
    assert ids(store) == {"t2", "t3", "t4"}
    counts = store.counts()
    assert (counts.traces, counts.observations, counts.scores) == (3, 3, 3)
    assert store.get_observation("o0") is None


def test_a_trace_still_being_written_is_not_evicted() -> None:
    store = MemoryStore(max_traces=3)
    for i in range(3):
        store.write([obs(f"o{i}", f"t{i}", start_time=at(i))])
    store.write([obs("o0", "t0", end_time=at(10))])  # t0 is busy again
    store.write([obs("o3", "t3", start_time=at(3))])
    assert ids(store) == {"t0", "t2", "t3"}


def _run(store: MemoryStore, trace_id: str, start: float, children: list[str]) -> None:
    """A LangChain-style run: the root run id is the trace id."""
    store.write(
        [
            trace(trace_id, name="agent", input={"try": start}),
            obs(trace_id, trace_id, name="agent", start_time=at(start)),
            *(
                obs(c, trace_id, parent_id=trace_id, start_time=at(start), end_time=at(start))
                for c in children
            ),
        ]
    )
    store.write([obs(trace_id, trace_id, end_time=at(start + 1), output="done")])


def test_rerunning_a_root_run_id_replaces_the_earlier_run() -> None:
    store = MemoryStore(max_traces=10)
    _run(store, "run1", 0, ["a", "b"])
    _run(store, "run1", 5, ["c"])
    detail = store.get_trace("run1")
    assert detail is not None
    assert sorted(o.id for o in detail.observations) == ["c", "run1"]
    assert detail.start_time == store.get_observation("c").start_time  # type: ignore[union-attr]
    assert detail.input == {"try": 5}
    assert store.get_observation("a") is None
    assert store.counts().observations == 2


def test_eviction_never_drops_the_newest_retry() -> None:
    store = MemoryStore(max_traces=2)
    _run(store, "run1", 0, ["a"])
    _run(store, "run2", 1, ["b"])
    _run(store, "run1", 2, ["c"])  # retry of run1, the oldest trace
    _run(store, "run3", 3, ["d"])
    assert ids(store) == {"run1", "run3"}
    latest = store.latest_trace()
    assert latest is not None and latest.id == "run3"
    retried = store.trace_for_run("c")
    assert retried is not None and retried.id == "run1"


def test_a_run_id_reused_under_another_trace_moves_there() -> None:
    store = MemoryStore()
    store.write(
        [obs("r", "t1", start_time=at(0), end_time=at(1)), obs("x", "t1", start_time=at(0))]
    )
    store.write([obs("r", "t2", start_time=at(5), end_time=at(6))])
    found = store.trace_for_run("r")
    assert found is not None and found.id == "t2"
    t1 = store.get_trace("t1")
    assert t1 is not None and [o.id for o in t1.observations] == ["x"]
    assert t1.observation_count == 1
    assert store.trace_for_run("missing") is None


def test_rewriting_a_start_is_not_a_rerun() -> None:
    store = MemoryStore()
    batch = [obs("r", "t", start_time=at(0)), obs("c", "t", parent_id="r", start_time=at(0))]
    store.write(batch)
    store.write([obs("r", "t", end_time=at(1))])
    store.write(batch)  # the writer retrying a batch
    detail = store.get_trace("t")
    assert detail is not None and [o.id for o in detail.observations] == ["c", "r"]
    assert detail.end_time is not None


def test_latest_trace_by_project() -> None:
    store = MemoryStore()
    store.write([obs("a", "ta", project="p", start_time=at(0))])
    store.write([obs("b", "tb", project="q", start_time=at(1))])
    store.write([obs("a", "ta", project="p", end_time=at(2))])  # a late write is not "latest"
    assert store.latest_trace("p").id == "ta"  # type: ignore[union-attr]
    assert store.latest_trace("q").id == "tb"  # type: ignore[union-attr]
    assert store.latest_trace().id == "tb"  # type: ignore[union-attr]
    assert store.latest_trace("none") is None


def test_reads_and_writes_never_alias_stored_data() -> None:
    store = MemoryStore()
    payload = {"messages": [{"content": "hi"}]}
    metadata = {"k": ["v"]}
    tags = ["a"]
    event = obs("o", "t", start_time=at(0), input=payload, metadata=metadata)
    store.write([event, trace("t", tags=tags, metadata=metadata)])
    payload["messages"][0]["content"] = "changed"
    metadata["k"].append("w")
    tags.append("b")
    event.fields["name"] = "renamed"
    detail = store.get_trace("t")
    assert detail is not None
    assert detail.observations[0].input == {"messages": [{"content": "hi"}]}
    assert detail.metadata == {"k": ["v"]} and detail.tags == ["a"]
    assert detail.observations[0].name is None
    detail.observations[0].input["messages"].clear()
    detail.metadata["k"].clear()
    detail.tags.append("x")
    again = store.get_trace("t")
    assert again is not None
    assert again.observations[0].input == {"messages": [{"content": "hi"}]}
    assert again.metadata == {"k": ["v"]} and again.tags == ["a"]


def test_one_writer_and_many_readers_at_once() -> None:
    store = MemoryStore(max_traces=500)
    errors: list[BaseException] = []
    done = threading.Event()

    def write() -> None:
        try:
            for i in range(300):
                store.write(
                    [
                        obs(f"o{i}", f"t{i}", start_time=at(i), metadata={"i": i}),
                        obs(f"c{i}", f"t{i}", parent_id=f"o{i}", start_time=at(i)),
                    ]
                )
                store.write([obs(f"o{i}", f"t{i}", end_time=at(i + 1))])
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    def read() -> None:
        try:
            while not done.is_set():
                for t in store.list_traces(TraceQuery(limit=20)).data:
                    store.get_trace(t.id)
                store.list_sessions()
                store.counts()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write)] + [threading.Thread(target=read) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    counts = store.counts()
    assert (counts.traces, counts.observations) == (300, 600)


def test_open_store_gives_a_bounded_memory_store() -> None:
    store = open_store(load_settings(database_url="memory://", retention_max_traces=7))
    assert isinstance(store, MemoryStore) and store.max_traces == 7
    unbounded = open_store(load_settings(database_url="memory://"))
    assert isinstance(unbounded, MemoryStore) and unbounded.max_traces == DEFAULT_MAX_TRACES


def test_a_tracer_on_the_memory_store() -> None:
    tracer = Tracer.create(database_url="memory://", start_server=False)
    try:
        with tracer.span("root", input="q") as span:
            span.update(output="a")
        assert tracer.flush(10) == 0
        store = tracer.store
        assert isinstance(store, MemoryStore)
        latest = store.latest_trace(tracer.project)
        assert latest is not None
        assert [(o.name, o.input, o.output) for o in latest.observations] == [("root", "q", "a")]
    finally:
        tracer.stop()

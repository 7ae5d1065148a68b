"""The framework-free API: context managers, decorators, nesting across threads and tasks,
updates, trace attributes and scores."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

import traceyard
from traceyard.model import Level, ObservationType, ScoreDataType, TraceDetail, TraceStatus
from traceyard.store.base import TraceQuery


def _traces(tracer: traceyard.Tracer) -> list[TraceDetail]:
    assert tracer.flush(10) == 0
    assert tracer.store is not None
    details = []
    for trace in tracer.store.list_traces(TraceQuery(limit=1000)).data:
        detail = tracer.store.get_trace(trace.id)
        assert detail is not None
        details.append(detail)
    return details


def _one(tracer: traceyard.Tracer) -> TraceDetail:
    traces = _traces(tracer)
    assert len(traces) == 1
    return traces[0]


def test_spans_generations_events_nest(tracer: traceyard.Tracer) -> None:
    with tracer.span("agent", as_type="agent", input={"task": "t"}) as root:
        with tracer.generation(
            "llm", model="gpt-4o", model_parameters={"temperature": 0.2}, input=[{"role": "user"}]
        ) as gen:
            gen.update(
                output="ok",
                usage={
                    "prompt_tokens": 100,
                    "completion_tokens": 20,
                    "prompt_tokens_details": {"cached_tokens": 40},
                },
            )
        tracer.event("checkpoint", input={"step": 1}, level=Level.WARNING)
        with tracer.span("tool", as_type=ObservationType.TOOL) as tool_span:
            tool_span.update(metadata={"a": 1})
            tool_span.update(metadata={"b": 2})
        root.update(output={"done": True})
        root.update_trace(
            user_id="u",
            session_id="s",
            tags=["x"],
            release="1.2",
            version="v3",
            environment="prod",
            metadata={"k": "v"},
        )
    detail = _one(tracer)
    by_name = {o.name: o for o in detail.observations}
    assert by_name["agent"].type is ObservationType.AGENT and by_name["agent"].parent_id is None
    assert {by_name[n].parent_id for n in ("llm", "checkpoint", "tool")} == {root.id}
    assert by_name["llm"].usage == {"input": 60, "cache_read": 40, "output": 20, "total": 120}
    assert by_name["llm"].model_parameters == {"temperature": 0.2}
    assert by_name["llm"].cost["total"] > 0
    assert by_name["checkpoint"].type is ObservationType.EVENT
    assert by_name["checkpoint"].start_time == by_name["checkpoint"].end_time
    assert by_name["checkpoint"].level is Level.WARNING
    assert by_name["tool"].metadata == {"a": 1, "b": 2}
    assert (
        detail.user_id,
        detail.session_id,
        detail.release,
        detail.version,
        detail.environment,
    ) == ("u", "s", "1.2", "v3", "prod")
    assert detail.tags == ["x"] and detail.metadata == {"k": "v"}
    assert detail.input == {"task": "t"} and detail.output == {"done": True}
    assert detail.status is TraceStatus.OK
    assert detail.id == root.trace_id == gen.trace_id


def test_exception_in_span_is_recorded_and_propagates(tracer: traceyard.Tracer) -> None:
    with pytest.raises(KeyError), tracer.span("outer"):
        raise KeyError("missing")
    detail = _one(tracer)
    assert detail.observations[0].level is Level.ERROR
    assert detail.observations[0].status_message == "KeyError: 'missing'"
    assert detail.status is TraceStatus.ERROR


def test_observe_sync_async_and_generators(tracer: traceyard.Tracer) -> None:
    @traceyard.observe
    def leaf(x: int) -> int:
        return x + 1

    @traceyard.observe(name="agen", as_type="chain")
    async def agen(n: int) -> AsyncIterator[str]:
        for i in range(n):
            yield str(leaf(i))

    @traceyard.observe(as_type=ObservationType.RETRIEVER)
    def gen(n: int) -> Iterator[int]:
        for i in range(n):
            yield leaf(i)

    @traceyard.observe(name="root")
    async def root(n: int) -> int:
        parts = [s async for s in agen(n)]
        return sum(gen(n)) + len(parts)

    tracer.install()
    assert asyncio.run(root(3)) == 9
    detail = _one(tracer)
    by_id = {o.id: o for o in detail.observations}
    names = sorted(o.name or "" for o in detail.observations)
    leaf_name = "test_observe_sync_async_and_generators.<locals>.leaf"
    gen_name = "test_observe_sync_async_and_generators.<locals>.gen"
    assert names == sorted(["root", "agen", gen_name] + [leaf_name] * 6)
    agen_obs = next(o for o in detail.observations if o.name == "agen")
    gen_obs = next(o for o in detail.observations if o.name == gen_name)
    assert agen_obs.output == "123" and gen_obs.output == [1, 2, 3]
    assert gen_obs.type is ObservationType.RETRIEVER
    for obs in detail.observations:
        if obs.name == leaf_name:
            assert by_id[obs.parent_id or ""].name in ("agen", gen_name)
    assert detail.output == 9
    root_obs = next(o for o in detail.observations if o.name == "root")
    assert root_obs.input == {"n": 3} and root_obs.output == 9


def test_observe_without_tracer_runs_untouched() -> None:
    @traceyard.observe
    def plain(x: int) -> int:
        return x * 3

    assert plain(2) == 6


def test_nesting_across_threads_and_tasks(tracer: traceyard.Tracer) -> None:
    def work(i: int) -> None:
        with tracer.span(f"thread-{i}"):
            pass

    async def task(i: int) -> None:
        with tracer.span(f"task-{i}"):
            await asyncio.sleep(0)

    with tracer.span("root") as root:
        threads = [
            threading.Thread(target=contextvars.copy_context().run, args=(work, i))
            for i in range(3)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        async def main() -> None:
            await asyncio.gather(*(task(i) for i in range(3)))
            await asyncio.to_thread(work, 99)

        asyncio.run(main())
    detail = _one(tracer)
    children = [o for o in detail.observations if o.parent_id == root.id]
    assert sorted(o.name or "" for o in children) == sorted(
        [f"thread-{i}" for i in (0, 1, 2, 99)] + [f"task-{i}" for i in range(3)]
    )


def test_scores_of_kinds(tracer: traceyard.Tracer) -> None:
    with tracer.span("r") as root:
        root.score("quality", 0.75, comment="good")
        tracer.score("passed", True)
        tracer.score("label", "positive", source="eval")
    tracer.score("session-wide", 1, session_id="sess")
    assert tracer.flush(10) == 0
    detail = _one(tracer)
    scores = {s.name: s for s in detail.scores or []}
    assert scores["quality"].value == 0.75 and scores["quality"].observation_id == root.id
    assert scores["quality"].comment == "good"
    assert scores["passed"].data_type is ScoreDataType.BOOLEAN and scores["passed"].value == 1.0
    assert scores["label"].data_type is ScoreDataType.CATEGORICAL
    assert scores["label"].string_value == "positive"
    assert tracer.store is not None
    session_scores = [s for s in tracer.store.list_scores().data if s.name == "session-wide"]
    assert session_scores[0].session_id == "sess" and session_scores[0].trace_id is None


def test_update_current_helpers(tracer: traceyard.Tracer) -> None:
    tracer.install()
    with tracer.span("r"):
        assert traceyard.get_current_trace_id() is not None
        traceyard.update_current_observation(output="set from helper")
        traceyard.update_current_trace(name="renamed", session_id="sess-2")
    detail = _one(tracer)
    assert detail.name == "renamed" and detail.session_id == "sess-2"
    assert detail.observations[0].output == "set from helper"


def test_session_and_trace_context_managers(data_dir: Path) -> None:
    with traceyard.Tracer.session(data_dir=data_dir, start_server=False) as tracer:  # noqa: SIM117
        with tracer.span("in-session"):  # the span needs the tracer made on the line above
            pass
    assert tracer.stopped

    async def run() -> None:
        async with traceyard.Tracer.session(data_dir=data_dir, start_server=False) as t:  # noqa: SIM117
            async with t.span("async-session"):
                pass
        assert t.stopped

    asyncio.run(run())

    @traceyard.observe
    def decorated() -> str:
        return "yes"

    with traceyard.trace(data_dir=data_dir, start_server=False) as installed:
        decorated()
    assert installed.stopped
    from traceyard.store.sqlite import SQLiteStore

    store = SQLiteStore.in_dir(data_dir)
    names = sorted(t.name or "" for t in store.list_traces(TraceQuery()).data)
    store.close()
    assert names == [
        "async-session",
        "in-session",
        "test_session_and_trace_context_managers.<locals>.decorated",
    ]


def test_explicit_parent_and_times(tracer: traceyard.Tracer) -> None:
    from datetime import datetime, timedelta, timezone

    t0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)
    root = tracer.span("root", start_time=t0)
    gen = tracer.generation("llm", parent=root, start_time=t0 + timedelta(seconds=1))
    gen.end(end_time=t0 + timedelta(seconds=3), output="x")
    tracer.event("ev", parent=root, start_time=t0 + timedelta(seconds=2))
    root.end(end_time=t0 + timedelta(seconds=4))
    detail = _one(tracer)  # one trace: the explicit parent is honoured outside any `with`
    by_name = {o.name: o for o in detail.observations}
    assert by_name["llm"].parent_id == root.id and by_name["ev"].parent_id == root.id
    assert by_name["llm"].start_time == t0 + timedelta(seconds=1)
    assert by_name["llm"].latency_ms == 2000
    assert by_name["ev"].start_time == by_name["ev"].end_time == t0 + timedelta(seconds=2)
    assert detail.start_time == t0 and detail.latency_ms == 4000

"""LangChain and LangGraph runs, with real langchain-core/langgraph and fake models, stored
exactly: tree, names, order, inputs/outputs, usage, cost, errors, time to first token."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import dispatch_custom_event
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda, RunnableParallel
from langchain_core.tools import tool

import traceyard
from traceyard.cost import PriceTable
from traceyard.model import Level, Observation, ObservationType, TraceDetail, TraceStatus
from traceyard.store.base import TraceQuery


def _answer(text: str = "Paris is lovely") -> AIMessage:
    return AIMessage(
        content=text,
        usage_metadata={
            "input_tokens": 30,
            "output_tokens": 8,
            "total_tokens": 38,
            "input_token_details": {"cache_read": 10},
            "output_token_details": {"reasoning": 3},
        },
        response_metadata={"model_name": "gpt-4o-mini"},
    )


def _model(n: int = 50) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter([_answer() for _ in range(n)]))


@tool
def shout(q: str) -> str:
    """Upper-case the question."""
    return q.upper()


@tool
def reverse(q: str) -> str:
    """Reverse the question."""
    return q[::-1]


@tool
def broken(q: str) -> str:
    """Always fails."""
    raise ValueError(f"cannot handle {q}")


def bench_chain(model: GenericFakeChatModel | None = None) -> Any:
    """prompt → chat model → parser, in parallel with two tools, then a combine step."""
    prompt = ChatPromptTemplate.from_messages([("system", "Be brief."), ("user", "{q}")])
    answer = prompt | (model or _model()) | StrOutputParser()
    parallel = RunnableParallel(
        answer=answer,
        shout=RunnableLambda(lambda d: shout.invoke(d["q"])),
        reverse=RunnableLambda(lambda d: reverse.invoke(d["q"])),
    )
    return parallel | RunnableLambda(lambda d: f"{d['answer']} / {d['shout']} / {d['reverse']}")


def _only_trace(tracer: traceyard.Tracer) -> TraceDetail:
    assert tracer.flush(10) == 0
    assert tracer.store is not None
    traces = tracer.store.list_traces(TraceQuery()).data
    assert len(traces) == 1, [t.name for t in traces]
    detail = tracer.store.get_trace(traces[0].id)
    assert detail is not None
    return detail


def _by_name(detail: TraceDetail) -> dict[str, Observation]:
    return {o.name or "": o for o in detail.observations}


def _path(detail: TraceDetail, observation: Observation) -> list[str]:
    by_id = {o.id: o for o in detail.observations}
    names = []
    node: Observation | None = observation
    while node is not None:
        names.append(node.name or "")
        node = by_id.get(node.parent_id) if node.parent_id else None
    return names[::-1]


def test_chain_tree_is_stored_exactly(tracer: traceyard.Tracer) -> None:
    result = bench_chain().invoke(
        {"q": "hi"},
        config={
            "callbacks": [tracer.handler],
            "run_name": "bench",
            "tags": ["t1"],
            "metadata": {"session_id": "s-1", "user_id": "u-1", "team": "core"},
        },
    )
    assert result == "Paris is lovely / HI / ih"
    detail = _only_trace(tracer)
    obs = _by_name(detail)

    # the tree: every observation hangs where LangChain ran it
    assert _path(detail, obs["GenericFakeChatModel"]) == [
        "bench",
        "RunnableParallel<answer,shout,reverse>",
        "RunnableSequence",
        "GenericFakeChatModel",
    ]
    assert _path(detail, obs["shout"])[-2:] == ["RunnableLambda", "shout"]
    assert _path(detail, obs["StrOutputParser"])[-2:] == ["RunnableSequence", "StrOutputParser"]
    roots = [o for o in detail.observations if o.parent_id is None]
    assert [r.name for r in roots] == ["bench"]
    # observations come back in start order, root first
    starts = [o.start_time for o in detail.observations]
    assert starts == sorted(starts)  # type: ignore[type-var]
    assert detail.observations[0].name == "bench"

    # types
    assert obs["GenericFakeChatModel"].type is ObservationType.GENERATION
    assert obs["shout"].type is ObservationType.TOOL
    assert obs["bench"].type is ObservationType.CHAIN

    # inputs and outputs
    generation = obs["GenericFakeChatModel"]
    assert generation.input == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    assert generation.output == {"role": "assistant", "content": "Paris is lovely"}
    assert obs["shout"].input == "hi" and obs["shout"].output == "HI"
    assert obs["bench"].input == {"q": "hi"}
    assert obs["bench"].output == result

    # usage in disjoint buckets (30 in = 20 fresh + 10 cached; 8 out = 5 + 3 reasoning)
    assert generation.usage == {
        "input": 20,
        "cache_read": 10,
        "output": 5,
        "reasoning": 3,
        "total": 38,
    }
    assert generation.model == "gpt-4o-mini"
    expected_cost = PriceTable.default().cost("gpt-4o-mini", generation.usage)
    assert expected_cost is not None
    assert generation.cost == pytest.approx(expected_cost)
    # cached tokens are priced at the cache price, not the input price, and not twice
    price = PriceTable.default().find("gpt-4o-mini")
    assert price is not None
    assert expected_cost["cache_read"] == pytest.approx(10 * price.prices["cache_read"])
    assert expected_cost["input"] == pytest.approx(20 * price.prices["input"])

    # trace level: name, tags, session and user from metadata, totals
    assert detail.name == "bench"
    assert detail.tags == ["t1"]
    assert detail.session_id == "s-1" and detail.user_id == "u-1"
    assert detail.metadata["team"] == "core"
    assert detail.status is TraceStatus.OK
    assert detail.observation_count == len(detail.observations)
    assert detail.total_tokens == 38
    assert detail.total_cost == pytest.approx(expected_cost["total"])
    assert detail.input == {"q": "hi"} and detail.output == result


def test_errors_are_level_error_with_message_and_traceback(tracer: traceyard.Tracer) -> None:
    chain = RunnableLambda(lambda q: broken.invoke(q))
    with pytest.raises(ValueError, match="cannot handle boom"):
        chain.invoke("boom", config={"callbacks": [tracer.handler]})
    detail = _only_trace(tracer)
    failed = _by_name(detail)["broken"]
    assert failed.level is Level.ERROR
    assert failed.status_message == "ValueError: cannot handle boom"
    assert "Traceback" in failed.metadata["traceback"]
    assert "raise ValueError" in failed.metadata["traceback"]
    assert detail.status is TraceStatus.ERROR and detail.error_count == 2  # tool + its chain


def test_streaming_records_time_to_first_token(tracer: traceyard.Tracer) -> None:
    chain = ChatPromptTemplate.from_messages([("user", "{q}")]) | _model() | StrOutputParser()
    chunks = list(chain.stream({"q": "stream please"}, config={"callbacks": [tracer.handler]}))
    assert "".join(chunks) == "Paris is lovely"
    detail = _only_trace(tracer)
    generation = _by_name(detail)["GenericFakeChatModel"]
    assert generation.completion_start_time is not None
    assert generation.start_time is not None and generation.end_time is not None
    assert generation.start_time <= generation.completion_start_time <= generation.end_time
    assert generation.time_to_first_token_ms is not None
    # a streamed chain learns its input only at the end: it is still stored
    assert detail.input == {"q": "stream please"}


async def test_async_chain_is_captured_inline(tracer: traceyard.Tracer) -> None:
    assert tracer.handler.run_inline  # no thread-pool hop per callback in async code
    result = await bench_chain().ainvoke({"q": "hey"}, config={"callbacks": [tracer.handler]})
    assert result.startswith("Paris is lovely")
    detail = _only_trace(tracer)
    names = {o.name for o in detail.observations}
    assert {"GenericFakeChatModel", "shout", "reverse", "StrOutputParser"} <= names
    assert detail.status is TraceStatus.OK


def test_install_captures_runs_given_no_callbacks(data_dir: Path) -> None:
    tracer = traceyard.Tracer.create(data_dir=data_dir, start_server=False).install()
    try:
        bench_chain().invoke({"q": "installed"})  # no callbacks passed at all

        def in_thread() -> str:
            return str(bench_chain().invoke({"q": "thread"}))

        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:  # a plain thread, no copied context
            pool.submit(in_thread).result()
        assert tracer.flush(10) == 0
        assert tracer.store is not None
        inputs = sorted(t.input["q"] for t in tracer.store.list_traces(TraceQuery()).data)
        assert inputs == ["installed", "thread"]
    finally:
        tracer.stop()
    # after stop the hook is gone: runs are no longer captured (and nothing raises)
    bench_chain().invoke({"q": "after stop"})


def test_end_without_start_still_lands(tracer: traceyard.Tracer) -> None:
    handler = tracer.handler
    run_id = uuid.uuid4()
    handler.on_chain_end({"answer": 42}, run_id=run_id)
    detail = _only_trace(tracer)
    assert [o.id for o in detail.observations] == [run_id.hex]
    assert detail.observations[0].output == {"answer": 42}


def test_retriever_custom_event_and_langchain_inside_a_span(tracer: traceyard.Tracer) -> None:
    class Docs(BaseRetriever):
        def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
            return [Document(page_content=f"about {query}", metadata={"source": "kb"})]

    def step(q: str) -> str:
        dispatch_custom_event("progress", {"stage": "retrieved"})
        return q

    chain = Docs() | RunnableLambda(lambda docs: docs[0].page_content) | RunnableLambda(step)
    with tracer.span("outer", input="x"):
        chain.invoke("cats", config={"callbacks": [tracer.handler]})
    detail = _only_trace(tracer)
    obs = _by_name(detail)
    assert _path(detail, obs["Docs"]) == ["outer", "RunnableSequence", "Docs"]
    assert obs["Docs"].type is ObservationType.RETRIEVER
    assert obs["Docs"].output == [
        {"page_content": "about cats", "metadata": {"source": "kb"}, "id": None}
    ]
    progress = obs["progress"]
    assert progress.type is ObservationType.EVENT and progress.input == {"stage": "retrieved"}
    assert _path(detail, progress)[-2:] == ["step", "progress"]


def test_observe_and_update_trace_inside_a_langchain_tool(tracer: traceyard.Tracer) -> None:
    @traceyard.observe(name="helper")
    def helper(x: str) -> str:
        tracer.update_trace(user_id="from-inside", tags=["inner"])
        return x * 2

    @tool
    def doubler(x: str) -> str:
        """Double."""
        return helper(x)

    tracer.install()
    doubler.invoke("ab", config={"callbacks": [tracer.handler], "tags": ["outer"]})
    detail = _only_trace(tracer)
    obs = _by_name(detail)
    assert _path(detail, obs["helper"]) == ["doubler", "helper"]
    assert obs["helper"].input == {"x": "ab"} and obs["helper"].output == "abab"
    assert detail.user_id == "from-inside"
    assert sorted(detail.tags) == ["inner", "outer"]


def test_langgraph_agent(tracer: traceyard.Tracer) -> None:
    from traceyard.demo import build_agent

    agent = build_agent()
    config = {"callbacks": [tracer.handler], "configurable": {"thread_id": "thread-7"}}
    state = agent.invoke({"messages": [("user", "weather and add please")]}, config=config)
    assert "18°C" in state["messages"][-1].content
    detail = _only_trace(tracer)
    assert detail.session_id == "thread-7"  # LangGraph's thread_id is the session
    generations = [o for o in detail.observations if o.type is ObservationType.GENERATION]
    assert len(generations) == 2
    assert all(g.metadata["langgraph_node"] == "agent" for g in generations)
    assert [g.metadata["langgraph_step"] for g in generations] == [1, 3]
    tool_runs = {o.name: o for o in detail.observations if o.type is ObservationType.TOOL}
    assert set(tool_runs) == {"get_weather", "add"}
    assert tool_runs["add"].input == {"a": 2, "b": 40}
    assert tool_runs["add"].metadata["langgraph_node"] == "tools"
    first = generations[0].output
    assert {c["name"] for c in first["tool_calls"]} == {"get_weather", "add"}
    assert detail.total_tokens == sum(g.usage["total"] for g in generations)


def test_disabled_tracer_is_inert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    monkeypatch.setenv("TRACEYARD_ENABLED", "false")
    threads_before = set(threading.enumerate())
    tracer = traceyard.Tracer.create(data_dir=tmp_path / "never", start_server=True)
    handler = tracer.handler
    assert all(
        getattr(handler, flag)
        for flag in (
            "ignore_llm",
            "ignore_chain",
            "ignore_agent",
            "ignore_retriever",
            "ignore_retry",
            "ignore_chat_model",
            "ignore_custom_event",
        )
    )
    tracer.install()
    bench_chain().invoke({"q": "nothing"}, config={"callbacks": [handler]})
    with tracer.span("s") as span:
        span.update(output=1)
    tracer.stop()
    assert not (tmp_path / "never").exists()
    assert set(threading.enumerate()) == threads_before
    assert tracer.server is None and tracer.store is None


def _events(n: int) -> Iterator[int]:
    yield from range(n)


def test_many_runs_in_threads_and_tasks_keep_their_own_trees(tracer: traceyard.Tracer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    chain = bench_chain(_model(200))
    with ThreadPoolExecutor(4) as pool:
        list(
            pool.map(
                lambda i: chain.invoke({"q": f"t{i}"}, config={"callbacks": [tracer.handler]}),
                range(8),
            )
        )

    async def many() -> None:
        await asyncio.gather(
            *(
                chain.ainvoke({"q": f"a{i}"}, config={"callbacks": [tracer.handler]})
                for i in range(8)
            )
        )

    asyncio.run(many())
    assert tracer.flush(10) == 0
    assert tracer.store is not None
    traces = tracer.store.list_traces(TraceQuery(limit=100)).data
    assert len(traces) == 16
    counts = {t.observation_count for t in traces}
    assert len(counts) == 1  # every run has the same shape, nothing leaked between runs
    assert all(t.status is TraceStatus.OK for t in traces)


def test_retries_and_agent_steps_are_events(tracer: traceyard.Tracer) -> None:
    import tenacity
    from langchain_core.agents import AgentAction, AgentFinish
    from langchain_core.outputs import Generation, LLMResult

    # LangChain reports retries from its LLM retry decorator (e.g. an OpenAI client's); a real
    # tenacity loop drives the same callback here, without the decorator's 4-second waits.
    run_id = uuid.uuid4()
    handler = tracer.handler
    handler.on_llm_start(None, ["hi"], run_id=run_id, name="flaky-llm")
    attempts = {"n": 0}

    def flaky() -> str:
        attempts["n"] += 1
        if attempts["n"] < 3:
            raise ConnectionError(f"try {attempts['n']}")
        return "ok"

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(3),
        retry=tenacity.retry_if_exception_type(ConnectionError),
        before_sleep=lambda state: handler.on_retry(state, run_id=run_id),
        wait=tenacity.wait_none(),
    )
    assert retrying(flaky) == "ok"
    handler.on_llm_end(LLMResult(generations=[[Generation(text="ok")]]), run_id=run_id)
    detail = _only_trace(tracer)
    retries = [o for o in detail.observations if o.name == "retry"]
    assert len(retries) == 2
    assert all(r.level is Level.WARNING and r.parent_id == run_id.hex for r in retries)
    assert sorted(r.status_message or "" for r in retries) == [
        "ConnectionError: try 1",
        "ConnectionError: try 2",
    ]
    assert sorted(r.metadata["attempt"] for r in retries) == [1, 2]
    assert _by_name(detail)["flaky-llm"].output == "ok"

    assert tracer.store is not None
    tracer.store.delete_traces([detail.id])
    run_id = uuid.uuid4()
    handler.on_chain_start(None, {"input": "q"}, run_id=run_id, name="AgentExecutor")
    handler.on_agent_action(AgentAction("search", {"q": "x"}, "I should search"), run_id=run_id)
    handler.on_agent_finish(AgentFinish({"output": "done"}, "final"), run_id=run_id)
    handler.on_chain_end({"output": "done"}, run_id=run_id)
    detail = _only_trace(tracer)
    obs = _by_name(detail)
    assert obs["agent_action:search"].input == {"tool": "search", "tool_input": {"q": "x"}}
    assert obs["agent_action:search"].metadata == {"log": "I should search"}
    assert obs["agent_finish"].output == {"output": "done"}
    assert {obs["agent_action:search"].parent_id, obs["agent_finish"].parent_id} == {run_id.hex}


def test_model_parameters_and_price_overrides(data_dir: Path) -> None:
    from traceyard.cost import PriceEntry

    custom = PriceEntry(model="my-model", prices={"input": 1e-3, "output": 2e-3})
    tracer = traceyard.Tracer.create(data_dir=data_dir, model_prices=[custom])
    try:
        handler = tracer.handler
        run_id = uuid.uuid4()
        handler.on_chat_model_start(
            None, [[]], run_id=run_id,
            invocation_params={"model": "my-model", "temperature": 0.3, "max_tokens": 99},
        )  # fmt: skip
        from langchain_core.outputs import ChatGeneration, LLMResult

        message = AIMessage(content="hi", usage_metadata={"input_tokens": 10, "output_tokens": 4,
                                                          "total_tokens": 14})  # fmt: skip
        handler.on_llm_end(LLMResult(generations=[[ChatGeneration(message=message)]]),
                           run_id=run_id)  # fmt: skip
        detail = _only_trace(tracer)
    finally:
        tracer.stop()
    generation = detail.observations[0]
    assert generation.model == "my-model"
    assert generation.model_parameters == {"temperature": 0.3, "max_tokens": 99}
    assert generation.cost == pytest.approx({"input": 1e-2, "output": 8e-3, "total": 1.8e-2})


def test_client_cost_wins(tracer: traceyard.Tracer) -> None:
    with tracer.generation("g", model="gpt-4o", usage={"input": 1000, "output": 1000}) as gen:
        gen.update(cost={"total": 0.5})
    detail = _only_trace(tracer)
    assert detail.observations[0].cost == {"total": 0.5}
    assert detail.total_cost == 0.5

"""``traceyard demo``: a small LangGraph agent with a fake model, traced into SQLite.

No network and no API key: the model is scripted (it calls tools, then answers, streaming its
tokens and reporting usage like a real provider), so the traces show a realistic tree with
generations, tool calls, usage, cost, sessions, users, a score and an error.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from traceyard.errors import MissingExtraError

try:
    from langchain_core.callbacks import CallbackManagerForLLMRun
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
    from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
    from langchain_core.tools import tool
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition
except ImportError as exc:  # pragma: no cover - only without the extra
    raise MissingExtraError("the demo agent", "demo") from exc

import traceyard


class ScriptedChatModel(BaseChatModel):
    """A chat model that answers from a script: a tool call for each tool it was told about
    in the question, then a final answer. Streams and reports usage like a real provider."""

    model_name: str = "gpt-4o-mini"

    @property
    def _llm_type(self) -> str:
        return "scripted-chat"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        return self

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        question = next(
            (str(m.content) for m in reversed(messages) if isinstance(m, HumanMessage)), ""
        )
        prompt_tokens = sum(len(str(m.content).split()) + 4 for m in messages)
        if messages and isinstance(messages[-1], HumanMessage):
            calls = []
            if "weather" in question:
                calls.append({"name": "get_weather", "args": {"city": "Paris"}, "id": "call_w"})
            if "add" in question or "sum" in question:
                calls.append({"name": "add", "args": {"a": 2, "b": 40}, "id": "call_a"})
            if "fail" in question:
                calls.append({"name": "flaky_lookup", "args": {"key": "x"}, "id": "call_f"})
            if calls:
                return AIMessage(
                    content="", tool_calls=calls, usage_metadata=_usage(prompt_tokens, 12)
                )
        tool_results = [str(m.content) for m in messages if m.type == "tool"]
        answer = "Here is what I found: " + ("; ".join(tool_results) or "nothing to look up.")
        return AIMessage(
            content=answer,
            usage_metadata=_usage(prompt_tokens, len(answer.split())),
            response_metadata={"model_name": self.model_name},
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        reply = self._reply(messages)
        words = str(reply.content).split(" ") if reply.content else [""]
        for index, word in enumerate(words):
            last = index == len(words) - 1
            chunk = AIMessageChunk(
                content=word + ("" if last else " "),
                tool_call_chunks=[
                    {
                        "name": c["name"],
                        "args": str(c["args"]).replace("'", '"'),
                        "id": c["id"],
                        "index": i,
                    }
                    for i, c in enumerate(reply.tool_calls)
                ]
                if last
                else [],
                usage_metadata=reply.usage_metadata if last else None,
                response_metadata={"model_name": self.model_name} if last else {},
            )
            if run_manager is not None:
                run_manager.on_llm_new_token(
                    chunk.content, chunk=ChatGenerationChunk(message=chunk)
                )
            yield ChatGenerationChunk(message=chunk)


def _usage(prompt: int, completion: int) -> Any:
    cached = prompt // 2
    return {
        "input_tokens": prompt,
        "output_tokens": completion,
        "total_tokens": prompt + completion,
        "input_token_details": {"cache_read": cached},
    }


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"It is 18°C and sunny in {city}."


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def flaky_lookup(key: str) -> str:
    """A lookup that fails, to show how errors look."""
    raise RuntimeError(f"lookup service unavailable for {key!r}")


def build_agent(model: BaseChatModel | None = None) -> Any:
    """A ReAct-style LangGraph agent: model ⇄ tools until the model answers."""
    tools = [get_weather, add, flaky_lookup]
    llm = (model or ScriptedChatModel()).bind_tools(tools)

    def call_model(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [llm.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", call_model)
    graph.add_node("tools", ToolNode(tools, handle_tool_errors=True))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    graph.add_edge("agent", END)
    return graph.compile()


QUESTIONS = [
    ("alice", "What is the weather in Paris?"),
    ("alice", "Can you add 2 and 40?"),
    ("bob", "What's the weather, and what is the sum of 2 and 40?"),
    ("bob", "Please look this up, even if it may fail."),
    ("carol", "Hello there!"),
]


def run_demo(tracer: traceyard.Tracer, rounds: int = 1) -> list[str]:
    """Run the scripted conversations through the agent; returns the trace ids."""
    agent = build_agent()
    trace_ids = []
    counter = itertools.count()
    for _ in range(rounds):
        for user, question in QUESTIONS:
            session = f"{user}-session-{next(counter) // 2}"
            config = {
                "callbacks": [tracer.handler],
                "metadata": {"user_id": user, "thread_id": session, "app": "demo"},
                "tags": ["demo"],
                "run_name": "weather-agent",
            }
            for _event in agent.stream(
                {"messages": [("user", question)]}, config=config, stream_mode="messages"
            ):
                pass
        tracer.flush()
    for trace in (
        tracer.store.list_traces(traceyard.store.TraceQuery(limit=100)).data if tracer.store else []
    ):
        trace_ids.append(trace.id)
    if trace_ids:
        tracer.score("helpfulness", 0.9, trace_id=trace_ids[0], comment="demo score")
    return trace_ids


def main(data_dir: str | Path = ".traceyard", serve: bool = True, rounds: int = 1) -> None:
    """Trace the demo agent into ``data_dir`` and (by default) serve the UI until Ctrl-C."""
    tracer = traceyard.Tracer.create(data_dir=data_dir, start_server=serve)
    try:
        trace_ids = run_demo(tracer, rounds)
        tracer.flush()
        where = tracer.store.counts().location if tracer.store else str(data_dir)
        print(f"traced {len(trace_ids)} agent runs into {where}", file=sys.stderr)
        url = getattr(tracer.server, "url", None)
        if serve and url:
            print(f"traceyard UI: {url}  (Ctrl-C to stop)", file=sys.stderr)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        tracer.stop()

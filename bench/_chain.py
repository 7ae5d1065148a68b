"""The benchmark chain: prompt → fake chat model → parser, in parallel with two tools, then a
combine step — about 20 callbacks per invoke, like the issue describes; and a sink that keeps
the events a tracer writes, for the scripts that count what capture and writing cost."""

from __future__ import annotations

from typing import Any

from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnableParallel
from langchain_core.tools import tool

ANSWER = AIMessage(
    content="Paris is the capital of France.",
    usage_metadata={
        "input_tokens": 25,
        "output_tokens": 8,
        "total_tokens": 33,
        "input_token_details": {"cache_read": 5},
    },
    response_metadata={"model_name": "gpt-4o-mini"},
)


@tool
def shout(q: str) -> str:
    """Upper-case the question."""
    return q.upper()


@tool
def reverse(q: str) -> str:
    """Reverse the question."""
    return q[::-1]


def build_chain() -> Any:
    prompt = ChatPromptTemplate.from_messages([("system", "Answer briefly."), ("user", "{q}")])
    # cycles through its responses forever, so it never runs out during a long benchmark
    model = FakeMessagesListChatModel(responses=[ANSWER])
    answer = prompt | model | StrOutputParser()
    parallel = RunnableParallel(
        answer=answer,
        shout=RunnableLambda(lambda d: shout.invoke(d["q"])),
        reverse=RunnableLambda(lambda d: reverse.invoke(d["q"])),
    )
    return parallel | RunnableLambda(lambda d: f"{d['answer']} | {d['shout']} | {d['reverse']}")


class CapturingSink:
    """A tracer's sink that keeps every event it is given (``Tracer(settings,
    store_factory=lambda: sink)``): capture without a store."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def write(self, events: Any) -> None:
        self.events.extend(events)

    def close(self) -> None:
        pass

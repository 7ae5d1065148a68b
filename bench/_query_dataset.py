"""server_query.py's data set as plain records, so a peer can load exactly the same traces.

Standard library only: the Phoenix loader imports it from Phoenix's own venv. The random
draws are made in the same order as ``server_query.load`` (seed 7), so trace ``i`` has the
same user, latency, error, models and token counts in both stores (checked once on every
997th trace against a data dir server_query.py loaded: project, name, user, session, error
count, total tokens and latency all equal).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

NAMES = [f"agent-{i}" for i in range(20)]
MODELS = ["gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet", "llama-3-70b"]
TAGS = [f"tag-{i}" for i in range(10)]
CHILDREN = [("GENERATION", "llm-plan"), ("TOOL", "search"), ("RETRIEVER", "retrieve"),
            ("GENERATION", "llm-answer")]  # fmt: skip
WEEK_NS = 7 * 86400 * 10**9
BIG_TRACE_ID = "b" * 32
BIG_TRACE_SPANS = 1000


@dataclass
class Child:
    kind: str  # GENERATION, TOOL or RETRIEVER (ours); LLM, TOOL, RETRIEVER in OpenInference
    name: str
    start_ns: int
    end_ns: int
    model: str | None = None
    usage: dict[str, int] | None = None
    error: bool = False


@dataclass
class TraceRecord:
    index: int
    trace_id: str
    project: str
    name: str
    user_id: str
    session_id: str
    tags: list[str]
    metadata: dict[str, str]
    input: dict[str, Any]
    output: dict[str, Any]
    start_ns: int
    end_ns: int
    error: bool
    children: list[Child] = field(default_factory=list)


def traces(count: int, now_ns: int) -> Iterator[TraceRecord]:
    """The ``count`` regular traces (root span "run" + 4 children each), oldest first."""
    rng = random.Random(7)
    for i in range(count):
        start = now_ns - WEEK_NS + (WEEK_NS * i) // count
        latency = rng.randint(50, 20_000) * 10**6
        error = rng.random() < 0.03
        needle = "needle" if i % 100 == 0 else "hay"
        record = TraceRecord(
            index=i,
            trace_id=f"{i:032x}",
            project="main" if i % 10 else "side",
            name=NAMES[i % len(NAMES)],
            user_id=f"user-{rng.randrange(1000)}",
            session_id=f"session-{i // 10}",
            tags=[TAGS[i % 10], TAGS[(i // 10) % 10]],
            metadata={"env": "prod" if i % 3 else "dev", "tenant": f"t{i % 50}"},
            input={"question": f"question {i} about {needle}"},
            output={"answer": f"answer {i}"},
            start_ns=start,
            end_ns=start + latency,
            error=error,
        )
        for k, (kind, name) in enumerate(CHILDREN):
            child = Child(kind, name, start + k * latency // 5, start + (k + 1) * latency // 5)
            if kind == "GENERATION":
                child.usage = {"input": rng.randint(100, 3000), "output": rng.randint(10, 500)}
                child.model = MODELS[(i + k) % 4]
            child.error = error and kind == "TOOL"
            record.children.append(child)
        yield record


def big_trace_start(now_ns: int) -> int:
    """The 1,000-span trace starts an hour before the load."""
    return now_ns - 3600 * 10**9

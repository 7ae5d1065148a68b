"""The payload shape every throughput bench shares: 20% of spans carry a 20 KB input."""

from __future__ import annotations

import random
import string
import time
from typing import Any

from traceyard.model import Entity, Event, ObservationType

BIG_SHARE = 0.2
BIG_BYTES = 20_000
OBS_PER_TRACE = 10


def prompt_text(rng: random.Random, size: int) -> str:
    """Prompt-like text: words from a vocabulary, compressible about as much as real prose."""
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(2000)]
    out: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(words)
        out.append(word)
        length += len(word) + 1
    return " ".join(out)[:size]


def big_inputs(rng: random.Random) -> list[dict[str, str]]:
    """The 20 KB inputs a workload picks from (built once: emitting costs no text work)."""
    return [{"prompt": prompt_text(rng, BIG_BYTES)} for _ in range(20)]


def observation_events(
    rng: random.Random, inputs: list[dict[str, str]], trace_id: str, project: str, id_prefix: str
) -> list[tuple[Event, Event]]:
    """One LangChain-shaped trace: (start, end) events per observation, every third a
    generation with usage, 20% of the inputs big."""
    now = time.time_ns()
    pairs = []
    parent = None
    for i in range(OBS_PER_TRACE):
        obs_id = f"{id_prefix}{i:04x}"
        payload: Any = rng.choice(inputs) if rng.random() < BIG_SHARE else {"q": f"question {i}"}
        is_llm = i % 3 == 1
        start: dict[str, Any] = {
            "parent_id": parent,
            "type": ObservationType.GENERATION if is_llm else ObservationType.CHAIN,
            "name": f"step-{i}",
            "start_time": now + i,
            "input": payload,
            "metadata": {"langgraph_node": "agent", "step": i},
        }
        end: dict[str, Any] = {"end_time": now + 1000 + i, "output": {"answer": f"ok {i}"}}
        if is_llm:
            start["model"] = "gpt-4o-mini"
            end["usage"] = {"input": 20, "cache_read": 5, "output": 8, "total": 33}
        pairs.append(
            (
                Event(Entity.OBSERVATION, obs_id, trace_id, project, start),
                Event(Entity.OBSERVATION, obs_id, trace_id, project, end),
            )
        )
        parent = parent or obs_id
    return pairs

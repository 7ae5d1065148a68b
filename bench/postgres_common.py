"""Shared by the PostgreSQL benches: the workload and a scratch schema on the local server.

The workload is the writer-ceiling shape (bench/writer_ceiling.py): traces of 10
observations, each a start and an end event as the LangChain handler emits them, 20% with a
20 KB input, every third a generation with usage. Ends arrive ``END_LAG`` traces after their
starts, so most observations are written twice (insert, then update), as in long runs.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import psycopg
from _workload import BIG_BYTES, BIG_SHARE, prompt_text

from traceyard.model import Entity, Event, ObservationType

ADMIN_URL = os.environ.get("TRACEYARD_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
OBS_PER_TRACE = 10
END_LAG = 50
BATCH_EVENTS = 2_000


class Workload:
    """Events of one trace at a time (start events, end events), with precomputed payloads."""

    def __init__(self, seed: int = 7, prefix: str = "") -> None:
        rng = random.Random(seed)
        self.big_inputs = [{"prompt": prompt_text(rng, BIG_BYTES)} for _ in range(20)]
        self.rng = rng
        self.prefix = prefix
        self.n = 0

    def trace(self, project: str = "bench") -> tuple[list[Event], list[Event]]:
        self.n += 1
        trace_id = f"{self.prefix}{self.n:024x}"
        now = time.time_ns()
        starts, ends = [], []
        parent = None
        for i in range(OBS_PER_TRACE):
            obs_id = f"{trace_id}{i:04x}"
            big = self.rng.random() < BIG_SHARE
            payload: Any = self.rng.choice(self.big_inputs) if big else {"q": f"question {i}"}
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
            starts.append(Event(Entity.OBSERVATION, obs_id, trace_id, project, start))
            ends.append(Event(Entity.OBSERVATION, obs_id, trace_id, project, end))
            parent = parent or obs_id
        starts.insert(0, Event(Entity.TRACE, trace_id, trace_id, project, {"name": "agent"}))
        return starts, ends

    def batches(self, count: int) -> Iterator[list[Event]]:
        """``count`` batches of BATCH_EVENTS events; ends lag their starts by END_LAG traces."""
        pending: list[list[Event]] = []
        batch: list[Event] = []
        made = 0
        while made < count:
            starts, ends = self.trace()
            batch.extend(starts)
            pending.append(ends)
            if len(pending) > END_LAG:
                batch.extend(pending.pop(0))
            if len(batch) >= BATCH_EVENTS:
                yield batch
                batch = []
                made += 1


def schema_url(schema: str) -> str:
    return f"{ADMIN_URL}?options={quote(f'-csearch_path={schema}')}"


@contextmanager
def scratch_schema(name: str | None = None, keep: bool = False) -> Iterator[str]:
    """A schema for a bench run (dropped afterwards unless ``keep``); yields its URL."""
    schema = name or f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    try:
        yield schema_url(schema)
    finally:
        if not keep:
            with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())

"""Shared by the PostgreSQL benches: the workload and a scratch schema on the local server.

The workload is the writer-ceiling shape (bench/writer_ceiling.py): traces of 10
observations, each a start and an end event as the LangChain handler emits them, 20% with a
20 KB input, every third a generation with usage. Ends arrive ``END_LAG`` traces after their
starts, so most observations are written twice (insert, then update), as in long runs.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import psycopg
from _workload import big_inputs, observation_events

from traceyard.model import Entity, Event

ADMIN_URL = os.environ.get("TRACEYARD_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
END_LAG = 50
BATCH_EVENTS = 2_000


class Workload:
    """Events of one trace at a time (start events, end events), with precomputed payloads."""

    def __init__(self, seed: int = 7, prefix: str = "") -> None:
        self.rng = random.Random(seed)
        self.big_inputs = big_inputs(self.rng)
        self.prefix = prefix
        self.n = 0

    def trace(self, project: str = "bench") -> tuple[list[Event], list[Event]]:
        self.n += 1
        trace_id = f"{self.prefix}{self.n:024x}"
        pairs = observation_events(self.rng, self.big_inputs, trace_id, project, trace_id)
        starts = [Event(Entity.TRACE, trace_id, trace_id, project, {"name": "agent"})]
        starts += [start for start, _ in pairs]
        return starts, [end for _, end in pairs]

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

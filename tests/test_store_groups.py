"""The sessions/users page walk (store/_groups.py) against a brute-force GROUP BY, on many
random shapes: ties on start times, keys spread over time, cursors chained page to page."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import pytest

from traceyard.store import _groups
from traceyard.store._groups import recent_groups

Trace = tuple[str, int, str]  # key, start_ns, trace id


def _pages(traces: list[Trace], limit: int, max_walk: int) -> list[str]:
    ordered = sorted(traces, key=lambda t: (t[1], t[2]), reverse=True)

    def walk(position: tuple[int, str] | None, n: int) -> list[Trace]:
        rows = [t for t in ordered if position is None or (t[1], t[2]) < position]
        return rows[:n]

    def aggregate(keys: list[str]) -> dict[str, Mapping[str, Any]]:
        return {k: {"key": k, "last_start": max(t[1] for t in traces if t[0] == k)} for k in keys}

    out: list[str] = []
    cursor: tuple[int, str] | None = None
    while True:

        def full_scan(after: tuple[int, str] | None = cursor) -> list[Mapping[str, Any]]:
            rows = list(aggregate(sorted({t[0] for t in traces})).values())
            rows = [r for r in rows if after is None or (r["last_start"], r["key"]) < after]
            rows.sort(key=lambda r: (r["last_start"], r["key"]), reverse=True)
            return rows[: limit + 1]

        rows = recent_groups(walk, aggregate, limit, cursor, full_scan, max_walk=max_walk)
        page = rows[:limit]
        out.extend(r["key"] for r in page)
        if len(rows) <= limit:
            return out
        cursor = (page[-1]["last_start"], page[-1]["key"])


@pytest.mark.parametrize("seed", range(60))
def test_pages_match_a_full_group_by(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    monkeypatch.setattr(_groups, "_CHUNK", rng.choice([1, 2, 3, 7, 500]))
    keys = [f"k{i:02d}" for i in range(rng.randint(1, 25))]
    traces = [
        (rng.choice(keys), rng.randint(0, rng.choice([3, 10, 100])), f"t{i:04d}")
        for i in range(rng.randint(1, 120))
    ]
    last: dict[str, int] = {}
    for key, start, _ in traces:
        last[key] = max(last.get(key, start), start)
    expected = sorted(last, key=lambda k: (last[k], k), reverse=True)
    limit = rng.randint(1, 6)
    assert _pages(traces, limit, max_walk=10_000) == expected
    # a walk cut short falls back to the full GROUP BY and still pages correctly
    assert _pages(traces, limit, max_walk=1) == expected

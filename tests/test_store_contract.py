"""The store contract, written once and run against every backend (SQLite, memory, PostgreSQL).

Every test gets an empty store of its own (a new file, a new MemoryStore, a new PostgreSQL
schema). The PostgreSQL runs fail, never skip, when the server is not reachable.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from store_contract import (
    BACKENDS,
    BLOB_THRESHOLD,
    T0,
    OpenStore,
    at,
    obs,
    score,
    store_opener,
    stored_payload_count,
    trace,
)

from traceyard.errors import StoreClosedError, StoreError
from traceyard.model import Event, Level, ScoreDataType, TraceStatus, ns_to_datetime
from traceyard.store.base import (
    MediaRecord,
    Store,
    TimeseriesGroup,
    TimeseriesQuery,
    TraceQuery,
    TraceSort,
)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def open_store(backend: str, tmp_path: Path) -> Iterator[OpenStore]:
    with store_opener(backend, tmp_path) as opener:
        yield opener


@pytest.fixture
def store(open_store: OpenStore) -> Store:
    return open_store()


def dt(seconds: float) -> datetime:
    value = ns_to_datetime(at(seconds))
    assert value is not None
    return value


BIG = {"text": "x" * (BLOB_THRESHOLD * 5), "n": 1}


# ------------------------------------------------------------------------------- writes


def test_start_and_end_merge_within_one_batch(store: Store) -> None:
    store.write(
        [
            obs("o1", "t1", name="root", type="chain", start_time=at(0), input={"q": 1}),
            obs("o1", "t1", end_time=at(2), output="done"),
        ]
    )
    detail = store.get_trace("t1")
    assert detail is not None
    [o] = detail.observations
    assert (o.name, o.type.value, o.input, o.output) == ("root", "chain", {"q": 1}, "done")
    assert (o.start_time, o.end_time, o.latency_ms) == (dt(0), dt(2), 2000.0)


def test_start_and_end_merge_across_batches(store: Store) -> None:
    store.write([obs("o1", "t1", name="root", start_time=at(0), input="in", level="WARNING")])
    store.write([obs("o1", "t1", end_time=at(1), output="out", status_message="slow")])
    o = store.get_observation("o1")
    assert o is not None
    assert (o.name, o.input, o.output, o.level, o.status_message) == (
        "root",
        "in",
        "out",
        Level.WARNING,
        "slow",
    )
    assert (o.start_time, o.end_time) == (dt(0), dt(1))


def test_an_end_whose_start_was_never_seen_creates_the_rows(store: Store) -> None:
    store.write([obs("o9", "t9", project="p", end_time=at(5), output={"ok": True})])
    assert store.get_trace("t9").latency_ms is None  # type: ignore[union-attr]
    detail = store.get_trace("t9")
    assert detail is not None
    assert detail.project == "p"
    assert [(o.id, o.output, o.start_time, o.end_time) for o in detail.observations] == [
        ("o9", {"ok": True}, None, dt(5))
    ]


def test_none_never_overwrites_and_last_value_wins(store: Store) -> None:
    store.write([trace("t1", name="first", user_id="u1", release="r1")])
    store.write([trace("t1", name="second", user_id=None, release=None, version="v2")])
    detail = store.get_trace("t1")
    assert detail is not None
    assert (detail.name, detail.user_id, detail.release, detail.version) == (
        "second",
        "u1",
        "r1",
        "v2",
    )


@pytest.mark.parametrize("across_batches", [False, True])
def test_metadata_merges_key_by_key_one_level_deep(store: Store, across_batches: bool) -> None:
    first = [
        trace("t1", metadata={"a": 1, "nested": {"x": 1}, "keep": "k", "flag": True}),
        obs("o1", "t1", start_time=at(0), metadata={"m": 1, "drop_me": "v"}),
    ]
    second = [
        trace("t1", metadata={"a": 2, "nested": {"y": None}, "new": [1, 2], "off": False}),
        obs("o1", "t1", end_time=at(1), metadata={"drop_me": None, "n": "two"}),
    ]
    if across_batches:
        store.write(first)
        store.write(second)
    else:
        store.write(first + second)
    detail = store.get_trace("t1")
    assert detail is not None
    assert detail.metadata == {
        "a": 2,
        "nested": {"y": None},
        "keep": "k",
        "flag": True,
        "new": [1, 2],
        "off": False,
    }
    assert detail.observations[0].metadata == {"m": 1, "drop_me": None, "n": "two"}


@pytest.mark.parametrize("across_batches", [False, True])
def test_tags_are_a_union_in_first_seen_order(store: Store, across_batches: bool) -> None:
    first = [trace("t1", tags=["b", "a"])]
    second = [trace("t1", tags=["c", "a"]), trace("t1", tags=["d"])]
    if across_batches:
        store.write(first)
        store.write(second)
    else:
        store.write(first + second)
    detail = store.get_trace("t1")
    assert detail is not None
    assert detail.tags == ["b", "a", "c", "d"]


def test_cost_is_computed_from_model_and_usage(store: Store) -> None:
    store.write(
        [
            obs(
                "g1",
                "t1",
                type="generation",
                model="gpt-4o",
                usage={"input": 1000, "output": 100, "total": 1100},
                start_time=at(0),
                end_time=at(1),
            )
        ]
    )
    g = store.get_observation("g1")
    assert g is not None
    assert g.cost["input"] > 0 and g.cost["output"] > 0
    assert g.cost["total"] == pytest.approx(g.cost["input"] + g.cost["output"])


@pytest.mark.parametrize("model_first", [True, False])
def test_cost_is_computed_when_model_and_usage_arrive_in_different_batches(
    store: Store, model_first: bool
) -> None:
    model = obs("g1", "t1", type="generation", model="gpt-4o", start_time=at(0))
    usage = obs("g1", "t1", usage={"input": 1000, "output": 100}, end_time=at(1))
    for batch in ([model], [usage]) if model_first else ([usage], [model]):
        store.write(batch)
    g = store.get_observation("g1")
    assert g is not None
    assert g.cost.get("total", 0) > 0
    detail = store.get_trace("t1")
    assert detail is not None
    assert detail.total_cost == pytest.approx(g.cost["total"])


@pytest.mark.parametrize("client_first", [True, False])
def test_client_cost_wins_over_computed_cost(store: Store, client_first: bool) -> None:
    client = obs("g1", "t1", cost={"input": 0.25, "output": 0.5, "total": 0.75})
    priced = obs(
        "g1",
        "t1",
        type="generation",
        model="gpt-4o",
        usage={"input": 1000, "output": 100},
        start_time=at(0),
        end_time=at(1),
    )
    for batch in ([client], [priced]) if client_first else ([priced], [client]):
        store.write(batch)
    g = store.get_observation("g1")
    assert g is not None
    assert g.cost == {"input": 0.25, "output": 0.5, "total": 0.75}
    detail = store.get_trace("t1")
    assert detail is not None
    assert detail.total_cost == pytest.approx(0.75)


def test_big_payloads_round_trip_everywhere(store: Store) -> None:
    big_out = ["y" * (BLOB_THRESHOLD * 3)]
    store.write(
        [
            trace("t1", name="big", input=BIG),
            obs("o1", "t1", start_time=at(0), input=BIG),
        ]
    )
    store.write([trace("t1", output=big_out), obs("o1", "t1", end_time=at(1), output=big_out)])
    detail = store.get_trace("t1")
    assert detail is not None
    assert (detail.input, detail.output) == (BIG, big_out)
    assert (detail.observations[0].input, detail.observations[0].output) == (BIG, big_out)
    o = store.get_observation("o1")
    assert o is not None and (o.input, o.output) == (BIG, big_out)
    [listed] = store.list_traces(TraceQuery()).data
    assert (listed.input, listed.output) == (BIG, big_out)
    # A small payload written later replaces the big one (and the other way round).
    store.write([obs("o1", "t1", input="small"), trace("t1", input="small")])
    o = store.get_observation("o1")
    detail = store.get_trace("t1")
    assert o is not None and detail is not None
    assert (o.input, o.output, detail.input) == ("small", big_out, "small")
    if stored_payload_count(store) is not None:
        assert stored_payload_count(store) >= 2


def test_derived_trace_fields(store: Store) -> None:
    store.write(
        [
            trace("t1", name="root"),
            obs("a", "t1", name="a", start_time=at(0), end_time=at(3)),
            obs(
                "g",
                "t1",
                parent_id="a",
                type="generation",
                model="unknown-model-x",
                usage={"input": 10, "output": 5, "cache_read": 2, "total": 17},
                cost={"total": 0.5},
                start_time=at(1),
                end_time=at(2),
            ),
            obs(
                "g2",
                "t1",
                parent_id="a",
                type="generation",
                usage={"input": 1, "output": 1},
                start_time=at(1),
                end_time=at(4),
            ),
            obs("e", "t1", parent_id="a", level="ERROR", start_time=at(1), end_time=at(1)),
        ]
    )
    detail = store.get_trace("t1")
    assert detail is not None
    assert detail.status is TraceStatus.ERROR
    assert (detail.start_time, detail.end_time, detail.latency_ms) == (dt(0), dt(4), 4000.0)
    assert (detail.observation_count, detail.error_count) == (4, 1)
    assert detail.usage == {"input": 11, "output": 6, "cache_read": 2, "total": 17}
    assert detail.total_tokens == 19  # g's total (17) + g2's buckets (2)
    assert detail.total_cost == pytest.approx(0.5)


def test_trace_status_running_ok_and_incomplete(store: Store) -> None:
    store.write([obs("a", "run", start_time=at(0)), obs("b", "done", start_time=at(0))])
    store.write([obs("b", "done", end_time=at(1)), obs("c", "lossy", start_time=at(0))])
    store.write([trace("lossy", incomplete=True)])
    statuses = {t: store.get_trace(t).status for t in ("run", "done", "lossy")}  # type: ignore[union-attr]
    assert statuses == {
        "run": TraceStatus.RUNNING,
        "done": TraceStatus.OK,
        "lossy": TraceStatus.INCOMPLETE,
    }
    # incomplete sticks: later events of the trace do not make it look finished
    store.write([obs("c", "lossy", end_time=at(1)), trace("lossy", incomplete=None)])
    lossy = store.get_trace("lossy")
    assert lossy is not None and lossy.status is TraceStatus.INCOMPLETE


def test_trace_times_come_from_trace_and_observations(store: Store) -> None:
    store.write([trace("t1", start_time=at(5), end_time=at(6)), obs("o", "t1", start_time=at(2))])
    store.write([obs("o", "t1", end_time=at(9))])
    detail = store.get_trace("t1")
    assert detail is not None
    assert (detail.start_time, detail.end_time, detail.latency_ms) == (dt(2), dt(9), 7000.0)


def test_get_trace_orders_observations_and_carries_scores(store: Store) -> None:
    store.write(
        [
            obs("z", "t1", name="third", start_time=at(3)),
            obs("y", "t1", name="first", start_time=at(1)),
            obs("x", "t1", name="second-b", start_time=at(2)),
            obs("w", "t1", name="second-a", start_time=at(2)),
            obs("v", "t1", name="untimed", end_time=at(4)),
            score("s2", "t1", name="quality", value=0.5, timestamp=at(7)),
            score("s1", "t1", name="helpful", value=1.0, timestamp=at(6), comment="nice"),
            score("s3", "other", name="quality", value=0.1, timestamp=at(6)),
        ]
    )
    detail = store.get_trace("t1")
    assert detail is not None
    assert [o.name for o in detail.observations] == [
        "untimed",
        "first",
        "second-a",
        "second-b",
        "third",
    ]
    assert detail.scores is not None
    assert [(s.id, s.name, s.value, s.comment) for s in detail.scores] == [
        ("s1", "helpful", 1.0, "nice"),
        ("s2", "quality", 0.5, None),
    ]
    assert store.get_trace("missing") is None
    assert store.get_observation("missing") is None


def test_get_observation_returns_every_field(store: Store) -> None:
    store.write(
        [
            obs(
                "g",
                "t1",
                parent_id="p",
                type="generation",
                name="llm",
                start_time=at(0),
                completion_start_time=at(0.25),
                end_time=at(1),
                level="WARNING",
                status_message="hm",
                input=[{"role": "user", "content": "hi"}],
                output={"role": "assistant", "content": "yo"},
                metadata={"k": "v"},
                model="gpt-4o-mini",
                model_parameters={"temperature": 0.2},
                usage={"input": 3, "output": 4, "total": 7},
                prompt_name="greet",
                prompt_version=2,
            )
        ]
    )
    g = store.get_observation("g")
    assert g is not None
    assert g.model_dump(exclude={"cost"}) == {
        "id": "g",
        "trace_id": "t1",
        "parent_id": "p",
        "type": g.type,
        "name": "llm",
        "start_time": dt(0),
        "end_time": dt(1),
        "level": Level.WARNING,
        "status_message": "hm",
        "input": [{"role": "user", "content": "hi"}],
        "output": {"role": "assistant", "content": "yo"},
        "metadata": {"k": "v"},
        "model": "gpt-4o-mini",
        "model_parameters": {"temperature": 0.2},
        "usage": {"input": 3, "output": 4, "total": 7},
        "completion_start_time": dt(0.25),
        "prompt_name": "greet",
        "prompt_version": 2,
        "latency_ms": 1000.0,
        "time_to_first_token_ms": 250.0,
    }
    assert g.type.value == "generation"


def test_rewriting_the_same_batch_is_idempotent(store: Store) -> None:
    batch = [
        trace("t1", name="n", tags=["a"], metadata={"k": 1}, input=BIG),
        obs("o1", "t1", start_time=at(0), input=BIG, metadata={"m": 1}),
        obs("o1", "t1", end_time=at(1)),
        obs("g1", "t1", model="gpt-4o", usage={"input": 10}, start_time=at(0), end_time=at(1)),
        score("s1", "t1", name="q", value=1.0, timestamp=at(2)),
    ]
    store.write(batch)
    first = store.get_trace("t1")
    counts = store.counts()
    payloads = stored_payload_count(store)
    store.write(batch)
    store.write(batch[:2])
    assert store.get_trace("t1") == first
    again = store.counts()
    assert (again.traces, again.observations, again.scores) == (1, 2, 1)
    assert (counts.traces, counts.observations, counts.scores) == (1, 2, 1)
    assert stored_payload_count(store) == payloads


def test_every_backend_implements_the_whole_protocol(store: Store) -> None:
    assert isinstance(store, Store)
    assert store.backend in BACKENDS


def test_counts_follow_writes_and_deletes(store: Store) -> None:
    empty = store.counts()
    assert (empty.backend, empty.traces, empty.observations, empty.scores) == (
        store.backend,
        0,
        0,
        0,
    )
    store.write([obs(f"o{i}", f"t{i % 3}", start_time=at(i)) for i in range(7)])
    store.write([score("s1", "t0", name="q", value=1), score("s2", "", name="q", value=2)])
    counts = store.counts()
    assert (counts.traces, counts.observations, counts.scores) == (3, 7, 2)
    assert counts.size_bytes >= 0 and counts.location
    store.delete_traces(["t0"])
    counts = store.counts()
    assert (counts.traces, counts.observations, counts.scores) == (2, 4, 1)


def test_a_closed_store_refuses_to_work(open_store: OpenStore) -> None:
    store = open_store()
    store.write([obs("o", "t", start_time=at(0))])
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreClosedError):
        store.write([obs("o2", "t", start_time=at(0))])
    with pytest.raises(StoreClosedError):
        store.get_trace("t")
    with pytest.raises(StoreClosedError):
        store.list_traces(TraceQuery())
    with pytest.raises(StoreClosedError):
        store.counts()


def test_a_malformed_cursor_is_a_store_error(store: Store) -> None:
    with pytest.raises(StoreError):
        store.list_traces(TraceQuery(cursor="not-a-cursor"))


# ------------------------------------------------------------------------------- listing


def _filter_dataset(store: Store) -> None:
    store.write(
        [
            trace(
                "t1",
                project="a",
                name="Checkout flow",
                user_id="u1",
                session_id="s1",
                tags=["prod", "beta"],
                metadata={"region": "eu", "n": 5, "flag": True},
                input={"q": "find the NEEDLE"},
            ),
            obs(
                "t1-g",
                "t1",
                project="a",
                type="generation",
                model="gpt-4o",
                usage={"input": 100, "output": 50},
                cost={"total": 0.02},
                start_time=at(0),
                end_time=at(2),
            ),
            trace(
                "t2",
                project="a",
                name="search",
                user_id="u2",
                session_id="s1",
                tags=["prod"],
                metadata={"region": "us"},
            ),
            obs("t2-s", "t2", project="a", level="ERROR", start_time=at(10), end_time=at(10.5)),
            obs(
                "t2-g",
                "t2",
                project="a",
                type="generation",
                model="claude-3-5-sonnet",
                cost={"total": 0.5},
                usage={"input": 1000, "output": 10},
                start_time=at(10),
                end_time=at(10.2),
            ),
            trace("t3", project="b", name="search again", user_id="u1", session_id="s2"),
            obs("t3-s", "t3", project="b", level="WARNING", start_time=at(20)),
            trace("t4", project="a", name="other", output="the needle is here"),
            obs("t4-s", "t4", project="a", level="DEBUG", start_time=at(30), end_time=at(31)),
            obs("t5-s", "t5", project="a", start_time=at(40), end_time=at(44)),
        ]
    )
    store.write([trace("t4", incomplete=True)])


FILTER_CASES: list[tuple[dict[str, Any], set[str]]] = [
    ({}, {"t1", "t2", "t3", "t4", "t5"}),
    ({"project": "a"}, {"t1", "t2", "t4", "t5"}),
    ({"name": "SEARCH"}, {"t2", "t3"}),
    ({"name": "out_flow"}, set()),  # _ is literal, not a wildcard
    ({"user_id": "u1"}, {"t1", "t3"}),
    ({"session_id": "s1"}, {"t1", "t2"}),
    ({"tags": ["prod"]}, {"t1", "t2"}),
    ({"tags": ["prod", "beta"]}, {"t1"}),
    ({"status": "error"}, {"t2"}),
    ({"status": "running"}, {"t3"}),
    ({"status": "incomplete"}, {"t4"}),
    ({"status": "ok"}, {"t1", "t5"}),
    ({"level": "ERROR"}, {"t2"}),
    ({"level": "WARNING"}, {"t3"}),
    ({"level": "DEBUG"}, {"t4"}),
    ({"level": "DEFAULT"}, {"t1", "t2", "t5"}),
    ({"start_after": "after:10"}, {"t2", "t3", "t4", "t5"}),
    ({"start_before": "before:10"}, {"t1"}),
    ({"start_after": "after:10", "start_before": "before:30"}, {"t2", "t3"}),
    ({"min_latency_ms": 2000}, {"t1", "t5"}),
    ({"max_latency_ms": 1000}, {"t2", "t3", "t4"}),
    ({"min_cost": 0.1}, {"t2"}),
    ({"model": "gpt-4o"}, {"t1"}),
    ({"metadata": {"region": "eu"}}, {"t1"}),
    ({"metadata": {"n": "5"}}, {"t1"}),
    ({"metadata": {"flag": "true"}}, {"t1"}),
    ({"metadata": {"region": "us", "n": "5"}}, set()),
    ({"text": "needle"}, {"t1", "t4"}),
    ({"text": "checkout"}, {"t1"}),
    ({"project": "a", "user_id": "u1", "tags": ["beta"], "model": "gpt-4o"}, {"t1"}),
]


@pytest.mark.parametrize(
    ("filters", "expected"), FILTER_CASES, ids=[str(c[0]) for c in FILTER_CASES]
)
def test_every_filter(store: Store, filters: dict[str, Any], expected: set[str]) -> None:
    _filter_dataset(store)
    resolved = {}
    for key, value in filters.items():
        if isinstance(value, str) and value.startswith(("after:", "before:")):
            value = dt(float(value.split(":")[1]))
        resolved[key] = value
    query = TraceQuery(**resolved)
    assert {t.id for t in store.list_traces(query).data} == expected
    # the same query drives delete-by-filter
    assert store.delete_where(query) == len(expected)
    assert not {t.id for t in store.list_traces(TraceQuery()).data} & expected


def _with_level(store: Store, level: str) -> set[str]:
    """Ids of the traces the level filter lists."""
    return {t.id for t in store.list_traces(TraceQuery(level=Level(level), limit=1000)).data}


@pytest.mark.parametrize("across_batches", [False, True])
def test_level_filters_follow_updates_deletes_and_prune(store: Store, across_batches: bool) -> None:
    # The level filters read per-level counts derived on the trace: a level changed by a
    # later event must move the trace from one filter to the other, and never leave it in both.
    first = [
        obs("a1", "a", level="WARNING", start_time=at(0), end_time=at(1)),
        obs("a2", "a", start_time=at(0), end_time=at(1)),  # no level: DEFAULT
        obs("b1", "b", level="DEBUG", start_time=at(10), end_time=at(11)),
        obs("c1", "c", level="DEFAULT", start_time=at(20), end_time=at(21)),
    ]
    then = [
        obs("a1", "a", level="DEBUG"),  # the only warning of a becomes a debug
        obs("a2", "a", level="ERROR"),  # and its only default becomes an error
        obs("b2", "b", level="WARNING", start_time=at(12)),
        obs("b2", "b", end_time=at(13)),
    ]
    if across_batches:
        store.write(first)
        assert (_with_level(store, "WARNING"), _with_level(store, "DEFAULT")) == ({"a"}, {"a", "c"})
        store.write(then)
    else:
        store.write(first + then)
    expected = {"DEBUG": {"a", "b"}, "DEFAULT": {"c"}, "WARNING": {"b"}, "ERROR": {"a"}}
    assert {level: _with_level(store, level) for level in expected} == expected
    a = store.get_trace("a")
    assert a is not None and (a.error_count, a.status) == (1, TraceStatus.ERROR)
    # a deleted trace leaves every filter; the other traces keep their counts
    assert store.delete_traces(["b"]) == 1
    expected = {"DEBUG": {"a"}, "DEFAULT": {"c"}, "WARNING": set(), "ERROR": {"a"}}
    assert {level: _with_level(store, level) for level in expected} == expected
    # prune: the newest trace (c) stays
    assert store.prune(max_traces=1) == 1
    expected = {"DEBUG": set(), "DEFAULT": {"c"}, "WARNING": set(), "ERROR": set()}
    assert {level: _with_level(store, level) for level in expected} == expected
    assert store.delete_where(TraceQuery(level=Level.DEFAULT)) == 1
    assert store.list_traces(TraceQuery()).data == []


def _sortable_dataset(store: Store) -> None:
    events = []
    for i in range(23):
        tid = f"t{i:02d}"
        # repeated values (i % 5, i % 4) force ties broken by id
        events.append(obs(f"{tid}-o", tid, start_time=at(i % 7), end_time=at(i % 7 + i % 5)))
        events.append(
            obs(
                f"{tid}-g",
                tid,
                type="generation",
                usage={"input": (i % 4) * 10},
                cost={"total": (i % 3) * 0.25},
                start_time=at(i % 7),
                end_time=at(i % 7),
            )
        )
    store.write(events)


@pytest.mark.parametrize("sort", list(TraceSort))
@pytest.mark.parametrize("descending", [True, False])
def test_every_sort_pages_without_overlap_or_gap(
    store: Store, sort: TraceSort, descending: bool
) -> None:
    _sortable_dataset(store)
    everything = store.list_traces(TraceQuery(limit=1000)).data
    assert len(everything) == 23

    def key(t: Any) -> tuple[Any, str]:
        value = {
            TraceSort.START_TIME: t.start_time,
            TraceSort.LATENCY: t.latency_ms,
            TraceSort.COST: t.total_cost,
            TraceSort.TOKENS: t.total_tokens,
        }[sort]
        return value, t.id

    expected = [t.id for t in sorted(everything, key=key, reverse=descending)]
    seen: list[str] = []
    query = TraceQuery(sort=sort, descending=descending, limit=4)
    while True:
        page = store.list_traces(query)
        assert len(page.data) <= 4
        seen.extend(t.id for t in page.data)
        if page.next_cursor is None:
            break
        query = query.model_copy(update={"cursor": page.next_cursor})
    assert seen == expected


def test_pagination_is_stable_while_new_traces_arrive(store: Store) -> None:
    store.write([obs(f"o{i}", f"t{i:03d}", start_time=at(i), end_time=at(i)) for i in range(30)])
    seen: list[str] = []
    query = TraceQuery(limit=7)
    fresh = 100
    while True:
        page = store.list_traces(query)
        seen.extend(t.id for t in page.data)
        # newer traces land on the first page's side; the pages we walk are not disturbed
        store.write([obs(f"n{fresh}", f"t{fresh:03d}", start_time=at(fresh), end_time=at(fresh))])
        fresh += 1
        if page.next_cursor is None:
            break
        query = query.model_copy(update={"cursor": page.next_cursor})
    assert seen == [f"t{i:03d}" for i in reversed(range(30))]


def test_list_traces_by_project_and_time_window_pages(store: Store) -> None:
    store.write(
        [
            obs(f"o{i}", f"t{i:02d}", project="p" if i % 2 else "q", start_time=at(i))
            for i in range(20)
        ]
    )
    query = TraceQuery(project="p", start_after=dt(4), start_before=dt(16), limit=2)
    seen: list[str] = []
    while True:
        page = store.list_traces(query)
        seen.extend(t.id for t in page.data)
        if page.next_cursor is None:
            break
        query = query.model_copy(update={"cursor": page.next_cursor})
    assert seen == ["t15", "t13", "t11", "t09", "t07", "t05"]


# ------------------------------------------------------------------------ sessions, users


def _people_dataset(store: Store) -> None:
    rows = [
        # trace, session, user, start, error, tokens, cost
        ("t1", "s1", "u1", 0, False, 10, 0.1),
        ("t2", "s1", "u2", 5, True, 20, 0.2),
        ("t3", "s2", "u1", 10, False, 30, 0.3),
        ("t4", "s3", "u3", 15, False, 40, 0.4),
        ("t5", None, "u3", 20, False, 50, 0.5),
        ("t6", "s4", None, 25, False, 60, 0.6),
    ]
    events = []
    for tid, session, user, start, error, tokens, cost in rows:
        events.append(trace(tid, session_id=session, user_id=user))
        events.append(
            obs(
                f"{tid}-g",
                tid,
                type="generation",
                usage={"total": tokens},
                cost={"total": cost},
                level="ERROR" if error else None,
                start_time=at(start),
                end_time=at(start + 1),
            )
        )
    store.write(events)


def test_sessions_list_with_totals_and_pages(store: Store) -> None:
    _people_dataset(store)
    page = store.list_sessions(limit=2)
    assert [s.id for s in page.data] == ["s4", "s3"]
    assert page.next_cursor is not None
    rest = store.list_sessions(limit=2, cursor=page.next_cursor)
    assert [s.id for s in rest.data] == ["s2", "s1"]
    assert rest.next_cursor is None
    s1 = rest.data[1]
    assert (s1.trace_count, s1.user_ids, s1.error_count) == (2, ["u1", "u2"], 1)
    assert (s1.start_time, s1.end_time) == (dt(0), dt(6))
    assert s1.total_tokens == 30 and s1.total_cost == pytest.approx(0.3)
    assert store.list_sessions(project="nope").data == []


def test_get_session_has_its_traces_in_order(store: Store) -> None:
    _people_dataset(store)
    session = store.get_session("s1")
    assert session is not None
    assert [t.id for t in session.traces] == ["t1", "t2"]
    assert (session.trace_count, session.error_count, session.total_tokens) == (2, 1, 30)
    assert session.user_ids == ["u1", "u2"]
    assert store.get_session("missing") is None
    assert store.get_session("s1", project="other") is None


def test_users_list_with_totals_and_pages(store: Store) -> None:
    _people_dataset(store)
    first = store.list_users(limit=2)
    assert [u.id for u in first.data] == ["u3", "u1"]
    assert first.next_cursor is not None
    second = store.list_users(limit=2, cursor=first.next_cursor)
    assert [u.id for u in second.data] == ["u2"] and second.next_cursor is None
    u1 = first.data[1]
    assert (u1.trace_count, u1.session_count, u1.error_count) == (2, 2, 0)
    assert (u1.first_seen, u1.last_seen, u1.total_tokens) == (dt(0), dt(10), 40)
    assert u1.total_cost == pytest.approx(0.4)
    u3 = first.data[0]
    assert (u3.trace_count, u3.session_count) == (2, 1)


@pytest.mark.parametrize("project", [None, "p1"])
def test_sessions_and_users_page_in_order_over_many_traces(
    store: Store, project: str | None
) -> None:
    # 1,200 traces (more than one walk chunk), sessions scattered in time, ties on start
    events = []
    expected_last: dict[tuple[str, str], dict[str, int]] = {"session_id": {}, "user_id": {}}
    for i in range(1200):
        start = (i * 7) % 600  # two traces per start second: ties
        proj = f"p{i % 2}"
        session, user = f"s{(i * 13) % 97:03d}", f"u{(i * 5) % 31:02d}"
        events.append(trace(f"t{i:05d}", project=proj, session_id=session, user_id=user))
        events.append(obs(f"o{i:05d}", f"t{i:05d}", project=proj, start_time=at(start)))
        if project is None or proj == project:
            for key, value in (("session_id", session), ("user_id", user)):
                seen = expected_last[key]
                seen[value] = max(seen.get(value, 0), at(start))
    store.write(events)
    for key, lister in (("session_id", store.list_sessions), ("user_id", store.list_users)):
        expected = sorted(expected_last[key], key=lambda v: (expected_last[key][v], v))[::-1]
        seen_ids: list[str] = []
        cursor = None
        while True:
            page = lister(project=project, limit=7, cursor=cursor)
            seen_ids.extend(item.id for item in page.data)
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen_ids == expected, key


def test_scores_list_filters_and_pages(store: Store) -> None:
    store.write(
        [
            score(f"s{i}", f"t{i % 2}", name="q" if i % 3 else "h", value=i, timestamp=at(i))
            for i in range(9)
        ]
        + [
            score(
                "sess",
                "",
                name="q",
                string_value="good",
                data_type=ScoreDataType.CATEGORICAL,
                session_id="s1",
                timestamp=at(20),
            )
        ]
    )
    all_ids: list[str] = []
    cursor = None
    while True:
        page = store.list_scores(limit=3, cursor=cursor)
        all_ids.extend(s.id for s in page.data)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert all_ids == ["sess", *(f"s{i}" for i in reversed(range(9)))]
    assert [s.id for s in store.list_scores(trace_id="t0").data] == ["s8", "s6", "s4", "s2", "s0"]
    assert [s.id for s in store.list_scores(name="h").data] == ["s6", "s3", "s0"]
    assert [s.id for s in store.list_scores(trace_id="t1", name="q").data] == ["s7", "s5", "s1"]
    [sess] = store.list_scores(name="q", limit=1).data
    assert (sess.trace_id, sess.session_id, sess.string_value, sess.data_type) == (
        None,
        "s1",
        "good",
        ScoreDataType.CATEGORICAL,
    )


# ------------------------------------------------------------------------------- deletes


def test_delete_traces_takes_everything_with_them(store: Store) -> None:
    store.write(
        [
            trace("t1", input=BIG),
            obs("o1", "t1", start_time=at(0), output=BIG),
            score("s1", "t1", name="q", value=1),
            trace("t2", input=BIG),
            obs("o2", "t2", start_time=at(1), output=BIG),
        ]
    )
    store.save_media(
        MediaRecord(id="m1", trace_id="t1", content_type="image/png", content_length=3, sha256="x")
    )
    before = stored_payload_count(store)
    assert store.delete_traces(["t1", "missing"]) == 1
    assert store.get_trace("t1") is None and store.get_observation("o1") is None
    assert store.list_scores(trace_id="t1").data == []
    assert store.get_media("m1") is None
    assert store.get_trace("t2") is not None
    if before is not None:
        assert stored_payload_count(store) == before - 2
    assert store.delete_traces([]) == 0
    # the ids are free again: a new trace with them starts from nothing
    store.write([obs("o1", "t1", start_time=at(5))])
    detail = store.get_trace("t1")
    assert detail is not None and detail.input is None and detail.observations[0].output is None


def test_prune_keeps_the_newest(store: Store) -> None:
    store.write([obs(f"o{i}", f"t{i:02d}", start_time=at(i), output=BIG) for i in range(12)])
    assert store.prune(older_than=dt(3)) == 3
    assert store.prune(max_traces=5) == 4
    assert [t.id for t in store.list_traces(TraceQuery()).data] == [
        f"t{i:02d}" for i in range(11, 6, -1)
    ]
    assert store.prune(max_traces=5, older_than=dt(0)) == 0
    assert store.counts().observations == 5
    if stored_payload_count(store) is not None:
        assert stored_payload_count(store) == 5


# ---------------------------------------------------------------------------- timeseries


def test_timeseries_buckets_and_percentiles(store: Store) -> None:
    events = []
    # bucket 0 (0-60 s): five finished traces with latencies 1..5 s, one running
    for i in range(5):
        events.append(obs(f"a{i}", f"a{i}", start_time=at(i), end_time=at(2 * i + 1)))
    events.append(obs("run", "run", start_time=at(30)))
    # bucket 2 (120-180 s): two traces, one with an error and tokens/cost
    events.append(obs("b0", "b0", start_time=at(125), end_time=at(126)))
    events.append(
        obs(
            "b1",
            "b1",
            type="generation",
            level="ERROR",
            usage={"input": 7, "output": 3},
            cost={"total": 0.5},
            start_time=at(130),
            end_time=at(140),
        )
    )
    events.append(obs("b1-child", "b1", start_time=at(131), end_time=at(132)))
    # outside the window
    events.append(obs("late", "late", start_time=at(400), end_time=at(401)))
    store.write(events)
    points = store.timeseries(TimeseriesQuery(start=dt(0), end=dt(300), interval_s=60))
    assert [p.bucket_start for p in points] == [dt(0), dt(120)]
    first, second = points
    assert (first.traces, first.observations, first.errors) == (6, 6, 0)
    assert (first.latency_p50_ms, first.latency_p95_ms) == (3000.0, 5000.0)
    assert (second.traces, second.observations, second.errors) == (2, 3, 1)
    assert (second.latency_p50_ms, second.latency_p95_ms) == (1000.0, 10000.0)
    assert second.total_tokens == 10 and second.total_cost == pytest.approx(0.5)
    assert first.group is None


def test_timeseries_grouped_by_name_and_by_model(store: Store) -> None:
    events = []
    for i, (name, model) in enumerate(
        [("chat", "gpt-4o"), ("chat", "gpt-4o"), ("rag", "claude-3-5-sonnet"), ("rag", "gpt-4o")]
    ):
        tid = f"t{i}"
        events.append(trace(tid, name=name, project="p"))
        events.append(
            obs(
                f"{tid}-g",
                tid,
                project="p",
                type="generation",
                model=model,
                usage={"input": 10 * (i + 1)},
                cost={"total": 0.1 * (i + 1)},
                level="ERROR" if i == 3 else None,
                start_time=at(i),
                end_time=at(i + 1 + i),
            )
        )
    events.append(obs("x", "other", project="q", start_time=at(2), end_time=at(3)))
    store.write(events)
    window = {"start": dt(0), "end": dt(60), "interval_s": 60, "project": "p"}
    by_name = store.timeseries(TimeseriesQuery(**window, group_by=TimeseriesGroup.NAME))
    assert [(p.group, p.traces, p.errors, p.total_tokens) for p in by_name] == [
        ("chat", 2, 0, 30),
        ("rag", 2, 1, 70),
    ]
    by_model = store.timeseries(TimeseriesQuery(**window, group_by=TimeseriesGroup.MODEL))
    summary = [
        (p.group, p.traces, p.observations, p.errors, p.total_tokens, p.latency_p95_ms)
        for p in by_model
    ]
    assert summary == [
        ("claude-3-5-sonnet", 1, 1, 0, 30, 3000.0),
        ("gpt-4o", 3, 3, 1, 70, 4000.0),
    ]
    assert by_model[1].total_cost == pytest.approx(0.7)
    assert store.timeseries(TimeseriesQuery(start=dt(100), end=dt(200))) == []


def _hours_dataset() -> tuple[list[Event], list[Event]]:
    """Traces over five hours (two projects, running ones, errors, tokens), then a batch that
    ends, moves, fails and extends some of them."""
    first: list[Event] = []
    for i in range(60):
        tid, project = f"h{i:02d}", "a" if i % 3 else "b"
        start = i * 300 + 7  # every 5 minutes, off the hour
        latency = (i * 7919) % 9000 / 10 + 0.5  # 0.5 s .. 900 s, with repeats
        fields: dict[str, Any] = {"start_time": at(start)}
        if i % 5:
            fields["end_time"] = at(start + latency)
        if i % 7 == 0:
            fields["level"] = "ERROR"
        first.append(obs(f"{tid}-root", tid, project=project, **fields))
        first.append(
            obs(
                f"{tid}-g",
                tid,
                project=project,
                type="generation",
                usage={"input": i, "output": 1},
                cost={"total": i / 100},
                start_time=at(start + 1),
                end_time=at(start + 2),
            )
        )
    then = [
        obs("h05-root", "h05", project="b", end_time=at(5 * 300 + 7 + 42)),  # finishes
        obs("h10-early", "h10", project="a", start_time=at(10), end_time=at(20)),  # moves hours
        obs("h11-root", "h11", project="a", level="ERROR"),
        obs("h12-root", "h12", project="b", end_time=at(12 * 300 + 7 + 9000)),  # much slower
        obs("h13-late", "h13", project="a", start_time=at(4000)),  # running again
    ]
    return first, then


def _series(points: list[Any]) -> list[tuple[Any, ...]]:
    return [
        (
            p.bucket_start,
            p.group,
            p.traces,
            p.observations,
            p.errors,
            p.latency_p50_ms,
            p.latency_p95_ms,
            p.total_tokens,
            pytest.approx(p.total_cost),
        )
        for p in points
    ]


HOUR_QUERIES: list[dict[str, Any]] = [
    {"start": 0, "end": 5 * 3600, "interval_s": 3600},
    {"start": 0, "end": 5 * 3600 - 1, "interval_s": 3600},  # last hour partial
    {"start": 0, "end": 6 * 3600, "interval_s": 7200, "project": "a"},
    {"start": 1800, "end": 4 * 3600 + 600, "interval_s": 3600},  # every hour split
    {"start": 100, "end": 5 * 3600 - 100, "interval_s": 5 * 3600},  # one bucket, off the hour
    {"start": 0, "end": 3600, "interval_s": 900, "project": "b"},
]


@pytest.mark.parametrize("query", HOUR_QUERIES, ids=[str(q) for q in HOUR_QUERIES])
def test_timeseries_over_hours_follows_updates_and_deletes(
    store: Store, query: dict[str, Any]
) -> None:
    # The SQL stores answer whole hours from a rollup kept beside the traces; the memory
    # store computes from the traces themselves. Both must agree after every change.
    from traceyard.store.memory import MemoryStore

    oracle = MemoryStore()
    first, then = _hours_dataset()
    q = TimeseriesQuery(**{**query, "start": dt(query["start"]), "end": dt(query["end"])})
    for events in (first, then):
        store.write(events)
        oracle.write(events)
        assert _series(store.timeseries(q)) == _series(oracle.timeseries(q))
    gone = ["h03", "h20", "h21", "h40"]
    assert store.delete_traces(gone) == oracle.delete_traces(gone) == 4
    assert _series(store.timeseries(q)) == _series(oracle.timeseries(q))
    assert store.prune(max_traces=30) == oracle.prune(max_traces=30) == 26
    assert _series(store.timeseries(q)) == _series(oracle.timeseries(q))


# ------------------------------------------------------------------------------- prompts


def test_prompt_versions_and_labels(store: Store) -> None:
    v1 = store.save_prompt("p", "greet", "Hi {{name}}", labels=["production"], tags=["t"])
    assert (v1.version, v1.labels, v1.tags, v1.type) == (1, ["production", "latest"], ["t"], "text")
    v2 = store.save_prompt(
        "p",
        "greet",
        [{"role": "system", "content": "Hello {{name}}"}],
        type="chat",
        config={"temperature": 0.1},
        labels=["staging", "latest"],
        commit_message="chat now",
    )
    assert (v2.version, v2.labels, v2.config, v2.commit_message) == (
        2,
        ["staging", "latest"],
        {"temperature": 0.1},
        "chat now",
    )
    assert v2.created_at is not None
    # latest moved to v2; production stayed on v1 and is the default
    default = store.get_prompt("p", "greet")
    assert default is not None and (default.version, default.labels) == (1, ["production"])
    latest = store.get_prompt("p", "greet", label="latest")
    assert latest is not None and latest.prompt == [{"role": "system", "content": "Hello {{name}}"}]
    assert store.get_prompt("p", "greet", version=1) == default
    assert store.get_prompt("p", "greet", label="nope") is None
    assert store.get_prompt("other", "greet") is None
    # a label moves: production to v2, and v1 loses it
    moved = store.set_prompt_labels("p", "greet", 2, ["production"])
    assert moved is not None and moved.labels == ["production", "latest"]
    v1_now = store.get_prompt("p", "greet", version=1)
    assert v1_now is not None and v1_now.labels == []
    assert store.set_prompt_labels("p", "greet", 9, ["x"]) is None
    # a third version takes latest; v1 can carry labels again
    store.save_prompt("p", "greet", "v3")
    store.set_prompt_labels("p", "greet", 1, ["old"])
    labels = {p.version: p.labels for p in store.list_prompts("p", "greet")}
    assert labels == {1: ["old"], 2: ["production"], 3: ["latest"]}
    store.save_prompt("p", "bye", "Bye")
    assert [(p.name, p.version) for p in store.list_prompts("p")] == [
        ("bye", 1),
        ("greet", 1),
        ("greet", 2),
        ("greet", 3),
    ]
    assert store.list_prompts("q") == []


def test_prompt_versions_are_numbered_atomically(open_store: OpenStore, backend: str) -> None:
    # two stores on one database (SQL backends), four threads saving at once
    stores = [open_store() for _ in range(1 if backend == "memory" else 2)]
    versions: list[int] = []
    lock = threading.Lock()

    def save(store: Store) -> None:
        for _ in range(5):
            v = store.save_prompt("p", "race", "x", labels=["production"]).version
            with lock:
                versions.append(v)

    threads = [threading.Thread(target=save, args=(stores[i % len(stores)],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(versions) == list(range(1, 21))
    labels = {p.version: p.labels for p in stores[0].list_prompts("p", "race")}
    assert "latest" in labels[20]
    assert [v for v, lbls in labels.items() if "latest" in lbls] == [20]
    assert len([v for v, lbls in labels.items() if "production" in lbls]) == 1


def test_prompt_links_filter_traces_and_count_usage(store: Store) -> None:
    # t1, t2 used greet v1 (t1 twice), t3 greet v2, t4 greet with no version, t5 another
    # project's greet v1, t6 no prompt; the link is fixed by a later update of g6
    def gen(obs_id: str, trace_id: str, version: int | None, project: str = "default") -> Any:
        start = at(int(trace_id[1:]))
        return obs(obs_id, trace_id, project, type="generation", start_time=start,
                   prompt_name="greet", prompt_version=version)  # fmt: skip

    store.write(
        [
            gen("g1", "t1", 1),
            gen("g1b", "t1", 1),
            gen("g2", "t2", 1),
            gen("g3", "t3", 2),
            gen("g4", "t4", None),
            gen("g5", "t5", 1, "other"),
            obs("s6", "t6", type="span", start_time=at(6)),
            obs("g6", "t6", type="generation", start_time=at(6)),
        ]
    )
    store.write([obs("g6", "t6", prompt_name="bye", prompt_version=3)])

    def ids(**filters: Any) -> list[str]:
        return [t.id for t in store.list_traces(TraceQuery(**filters)).data]

    assert ids(prompt_name="greet", prompt_version=1) == ["t5", "t2", "t1"]
    assert ids(prompt_name="greet", prompt_version=1, project="default") == ["t2", "t1"]
    assert ids(prompt_name="greet", prompt_version=2) == ["t3"]
    assert ids(prompt_name="greet") == ["t5", "t4", "t3", "t2", "t1"]
    assert ids(prompt_name="bye", prompt_version=3) == ["t6"]
    assert ids(prompt_name="greet", prompt_version=9) == []
    assert ids(prompt_name="gree") == []  # exact name, not a substring
    # paging through a prompt's traces
    first = store.list_traces(TraceQuery(prompt_name="greet", limit=2))
    assert [t.id for t in first.data] == ["t5", "t4"] and first.next_cursor is not None
    rest = store.list_traces(TraceQuery(prompt_name="greet", limit=2, cursor=first.next_cursor))
    assert [t.id for t in rest.data] == ["t3", "t2"]

    # use is counted for saved versions (and their name's unversioned links) only
    for project, name, versions in (
        ("default", "greet", 3),
        ("default", "bye", 3),
        ("other", "greet", 1),
        ("default", "unused", 1),
    ):
        for _ in range(versions):
            store.save_prompt(project, name, "text")  # fmt: skip

    def usage(project: str | None, name: str | None = None, **limit: int) -> list[tuple[Any, ...]]:
        return [
            (u.project, u.name, u.version, u.observations, u.traces, u.capped)
            for u in store.prompt_usage(project, name, **limit)
        ]

    assert usage("default") == [
        ("default", "bye", 3, 1, 1, False),
        ("default", "greet", None, 1, 1, False),
        ("default", "greet", 1, 3, 2, False),
        ("default", "greet", 2, 1, 1, False),
    ]
    assert usage("default", "greet") == usage("default")[1:]
    assert usage(None, "greet") == [*usage("default", "greet"), ("other", "greet", 1, 1, 1, False)]
    assert usage("nobody") == [] and usage("default", "unused") == []
    # counting stops at the limit: "at least"
    [_, capped, _] = store.prompt_usage("default", "greet", limit=2)
    assert (capped.version, capped.observations, capped.capped) == (1, 2, True)
    assert 1 <= capped.traces <= 2
    # deleting a trace takes its links with it
    store.delete_traces(["t1"])
    assert usage("default", "greet")[1] == ("default", "greet", 1, 1, 1, False)
    assert ids(prompt_name="greet", prompt_version=1, project="default") == ["t2"]


def test_prompt_version_filter_needs_a_name() -> None:
    with pytest.raises(ValueError, match="prompt_version needs prompt_name"):
        TraceQuery(prompt_version=1)


def test_prompts_of_every_project(store: Store) -> None:
    store.save_prompt("p", "greet", "Hi")
    store.save_prompt("a", "greet", "Hello")
    store.save_prompt("a", "zeta", "Z")
    assert [(p.project, p.name, p.version) for p in store.list_prompts(None)] == [
        ("a", "greet", 1),
        ("a", "zeta", 1),
        ("p", "greet", 1),
    ]
    assert [p.project for p in store.list_prompts(None, "greet")] == ["a", "p"]


# --------------------------------------------------------------------------------- media


def test_media_round_trip(store: Store) -> None:
    record = MediaRecord(
        id="m1",
        project="p",
        trace_id="t1",
        observation_id="o1",
        field="input",
        content_type="image/png",
        content_length=4,
        sha256="abc",
    )
    store.save_media(record)
    saved = store.get_media("m1")
    assert saved is not None and saved.data is None and saved.created_at is not None
    uploaded = datetime(2026, 1, 2, tzinfo=timezone.utc)
    store.save_media(record.model_copy(update={"data": b"\x89PNG", "uploaded_at": uploaded}))
    got = store.get_media("m1")
    assert got is not None
    assert (got.data, got.uploaded_at, got.trace_id, got.field) == (
        b"\x89PNG",
        uploaded,
        "t1",
        "input",
    )
    assert got.created_at == saved.created_at
    assert store.get_media("m2") is None


def test_times_are_timezone_aware_utc(store: Store) -> None:
    store.write([obs("o", "t", start_time=T0 + 123_456_000, end_time=T0 + 1_123_456_000)])
    detail = store.get_trace("t")
    assert detail is not None and detail.start_time is not None
    assert detail.start_time.tzinfo is not None
    assert detail.start_time - dt(0) == timedelta(microseconds=123_456)

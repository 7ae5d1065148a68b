"""The HTTP API in-process (httpx ASGITransport): every route, every filter, deletes, paging."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from test_server_support import BASE_NS, MODELS, SeedTrace, asgi_client, make_state, seed

from traceyard.capture.tracer import Tracer
from traceyard.model import Entity, Event
from traceyard.server.state import ServerState


@pytest.fixture
def state(tracer: Tracer) -> ServerState:
    return make_state(tracer)


@pytest.fixture
def seeded(state: ServerState) -> list[SeedTrace]:
    return seed(state.store, 40)


async def _ids(client: httpx.AsyncClient, params: Any) -> list[str]:
    response = await client.get("/api/traces", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    return [t["id"] for t in body["data"]]


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat()


CUTOFF = BASE_NS + 10 * 60 * 10**9
FILTERS: list[tuple[str, list[tuple[str, Any]], Any]] = [
    ("project", [("project", "alpha")], lambda t: t.project == "alpha"),
    ("name", [("name", "CHAT-1")], lambda t: "chat-1" in t.name),
    ("user_id", [("user_id", "user-1")], lambda t: t.user_id == "user-1"),
    ("session_id", [("session_id", "session-2")], lambda t: t.session_id == "session-2"),
    ("tags", [("tags", "prod"), ("tags", "tier-0")], lambda t: {"prod", "tier-0"} <= {*t.tags}),
    ("status", [("status", "error")], lambda t: t.error),
    ("level", [("level", "ERROR")], lambda t: t.error),
    ("start_after", [("start_after", _iso(CUTOFF))], lambda t: t.start_ns >= CUTOFF),
    ("start_before", [("start_before", _iso(CUTOFF))], lambda t: t.start_ns < CUTOFF),
    ("min_latency_ms", [("min_latency_ms", 250)], lambda t: t.latency_ms >= 250),
    ("max_latency_ms", [("max_latency_ms", 200)], lambda t: t.latency_ms <= 200),
    ("min_cost", [("min_cost", 0.02)], lambda t: t.cost >= 0.02),
    ("model", [("model", MODELS[1])], lambda t: t.model == MODELS[1]),
    ("metadata", [("metadata", "env:prod"), ("metadata", "region:r0")],
     lambda t: t.metadata == {"env": "prod", "region": "r0"}),
    ("text", [("text", "needle")], lambda t: "needle" in t.text),
]  # fmt: skip


@pytest.mark.parametrize(("label", "params", "expect"), FILTERS, ids=[f[0] for f in FILTERS])
async def test_each_filter_returns_exactly_the_matching_traces(
    state: ServerState, seeded: list[SeedTrace], label: str, params: Any, expect: Any
) -> None:
    expected = {t.id for t in seeded if expect(t)}
    assert expected and len(expected) < len(seeded), f"seed gives {label} no discriminating power"
    async with asgi_client(state) as client:
        got = await _ids(client, [*params, ("limit", 1000)])
    assert set(got) == expected
    assert len(got) == len(expected)


async def test_filters_combine_with_and(state: ServerState, seeded: list[SeedTrace]) -> None:
    expected = {t.id for t in seeded if t.project == "alpha" and t.user_id == "user-0"}
    async with asgi_client(state) as client:
        got = await _ids(client, {"project": "alpha", "user_id": "user-0", "limit": 1000})
    assert set(got) == expected and expected


@pytest.mark.parametrize(
    ("sort", "key"),
    [("start_time", "start_time"), ("latency", "latency_ms"), ("cost", "total_cost"),
     ("tokens", "total_tokens")],
)  # fmt: skip
@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_sorting(
    state: ServerState, seeded: list[SeedTrace], sort: str, key: str, order: str
) -> None:
    async with asgi_client(state) as client:
        response = await client.get(
            "/api/traces", params={"sort": sort, "order": order, "limit": 1000}
        )
    values = [t[key] for t in response.json()["data"]]
    assert len(values) == len(seeded)
    assert values == sorted(values, reverse=order == "desc")
    assert len(set(values)) > 1


async def test_default_view_is_newest_first_with_derived_fields(
    state: ServerState, seeded: list[SeedTrace]
) -> None:
    async with asgi_client(state) as client:
        body = (await client.get("/api/traces", params={"limit": 5})).json()
    newest = sorted(seeded, key=lambda t: t.start_ns, reverse=True)[:5]
    assert [t["id"] for t in body["data"]] == [t.id for t in newest]
    first, expected = body["data"][0], newest[0]
    assert first["observation_count"] == 3
    assert first["total_tokens"] == expected.tokens
    assert first["total_cost"] == pytest.approx(expected.cost)
    assert first["latency_ms"] == pytest.approx(expected.latency_ms)
    assert first["status"] == ("error" if expected.error else "ok")
    assert body["next_cursor"]


async def test_cursor_pages_stay_stable_while_new_traces_arrive(
    state: ServerState, seeded: list[SeedTrace]
) -> None:
    seen: list[str] = []
    cursor: str | None = None
    written = 0
    async with asgi_client(state) as client:
        while True:
            params: dict[str, Any] = {"limit": 7}
            if cursor:
                params["cursor"] = cursor
            body = (await client.get("/api/traces", params=params)).json()
            seen.extend(t["id"] for t in body["data"])
            cursor = body["next_cursor"]
            if cursor is None:
                break
            # A writer adds newer traces (and updates an old one) between page reads.
            seed(state.store, 3, start_index=1000 + written)
            written += 3
            state.store.write(
                [Event(Entity.TRACE, "trace-00001", "trace-00001", "beta", {"tags": ["late"]})]
            )
    assert written > 0
    assert len(seen) == len(set(seen)), "a trace appeared on two pages"
    assert set(seen) == {t.id for t in seeded}, "pages missed or invented traces"


async def test_trace_detail_has_fields_at_top_level_observations_and_scores(
    tracer: Tracer, state: ServerState, seeded: list[SeedTrace]
) -> None:
    target = seeded[3]
    big_input = {"document": "x" * 50_000}  # above blob_threshold_bytes: stored compressed
    state.store.write(
        [Event(Entity.OBSERVATION, target.observation_ids[2], target.id, target.project,
               {"input": big_input})]
    )  # fmt: skip
    async with asgi_client(state) as client:
        created = await client.post(
            "/api/scores", json={"name": "quality", "value": 0.75, "trace_id": target.id}
        )
        assert created.status_code == 201, created.text
        body = (await client.get(f"/api/traces/{target.id}")).json()
        observation = (await client.get(f"/api/observations/{target.observation_ids[1]}")).json()
    assert body["id"] == target.id and body["name"] == target.name
    assert body["user_id"] == target.user_id and body["tags"] == target.tags
    assert body["input"] == {"question": target.text}
    assert [o["id"] for o in body["observations"]] == target.observation_ids
    tool = body["observations"][2]
    assert tool["input"] == big_input, "large payloads come back whole"
    assert [(s["name"], s["value"]) for s in body["scores"]] == [("quality", 0.75)]
    assert body["scores"][0]["id"] == created.json()["id"]
    assert observation["model"] == target.model
    assert observation["usage"]["total"] == target.tokens
    assert observation["time_to_first_token_ms"] == pytest.approx(4.0)  # 5 ms - 1 ms


async def test_missing_things_are_404_in_the_error_shape(state: ServerState) -> None:
    async with asgi_client(state) as client:
        for path in ("/api/traces/nope", "/api/observations/nope", "/api/sessions/nope"):
            response = await client.get(path)
            assert response.status_code == 404
            error = response.json()["error"]
            assert error["code"] == "not_found" and "'nope'" in error["message"]


async def test_sessions_and_users(state: ServerState, seeded: list[SeedTrace]) -> None:
    async with asgi_client(state) as client:
        sessions = (await client.get("/api/sessions", params={"limit": 100})).json()["data"]
        detail = (await client.get("/api/sessions/session-2")).json()
        users = (await client.get("/api/users", params={"limit": 100})).json()["data"]
        alpha_users = (await client.get("/api/users", params={"project": "alpha"})).json()["data"]
    by_session: dict[str, list[SeedTrace]] = {}
    for t in seeded:
        by_session.setdefault(t.session_id, []).append(t)
    assert {s["id"]: s["trace_count"] for s in sessions} == {
        k: len(v) for k, v in by_session.items()
    }
    expected = sorted(by_session["session-2"], key=lambda t: t.start_ns)
    assert [t["id"] for t in detail["traces"]] == [t.id for t in expected]
    assert detail["total_tokens"] == sum(t.tokens for t in expected)
    assert detail["total_cost"] == pytest.approx(sum(t.cost for t in expected))
    per_user: dict[str, list[SeedTrace]] = {}
    for t in seeded:
        per_user.setdefault(t.user_id, []).append(t)
    assert {u["id"]: u["trace_count"] for u in users} == {k: len(v) for k, v in per_user.items()}
    for user in users:
        assert user["total_tokens"] == sum(t.tokens for t in per_user[user["id"]])
    assert {u["project"] for u in alpha_users} == {"alpha"}


async def test_scores_post_validation_and_listing(
    state: ServerState, seeded: list[SeedTrace]
) -> None:
    trace_id = seeded[0].id
    async with asgi_client(state) as client:
        good = [
            {"name": "helpful", "value": True, "trace_id": trace_id, "source": "annotation"},
            {"name": "tone", "value": "polite", "trace_id": trace_id, "comment": "nice"},
            {"name": "accuracy", "value": 3, "trace_id": trace_id,
             "observation_id": seeded[0].observation_ids[1]},
            {"name": "session-quality", "value": 1, "session_id": "session-0"},
        ]  # fmt: skip
        for body in good:
            response = await client.post("/api/scores", json=body)
            assert response.status_code == 201, response.text
            assert response.json()["durable"] is True
        bad = [
            ({"name": "x", "value": 1}, "trace_id or a session_id"),
            ({"name": "x", "value": "a", "trace_id": trace_id, "data_type": "numeric"}, "numeric"),
            ({"name": "x", "value": 1, "observation_id": "o"}, "trace_id"),
            ({"name": "", "value": 1, "trace_id": trace_id}, "name"),
            ({"name": "x", "value": 1, "trace_id": trace_id, "unknown": 1}, "unknown"),
        ]
        for body, needle in bad:
            response = await client.post("/api/scores", json=body)
            assert response.status_code == 422, (body, response.text)
            assert needle in response.json()["error"]["message"], response.text
        listed = (await client.get("/api/scores", params={"trace_id": trace_id})).json()["data"]
        by_name = (await client.get("/api/scores", params={"name": "tone"})).json()["data"]
    kinds = {s["name"]: (s["data_type"], s["value"], s["string_value"]) for s in listed}
    assert kinds == {
        "helpful": ("boolean", 1.0, "true"),
        "tone": ("categorical", None, "polite"),
        "accuracy": ("numeric", 3.0, None),
    }
    assert [s["comment"] for s in by_name] == ["nice"]


async def test_scores_without_a_tracer_are_written_directly(
    tracer: Tracer, seeded: list[SeedTrace]
) -> None:
    state = make_state(tracer)
    state.tracer = None  # like a server given only a store
    async with asgi_client(state) as client:
        response = await client.post(
            "/api/scores", json={"name": "n", "value": 2, "trace_id": seeded[1].id}
        )
        assert response.status_code == 201
        listed = (await client.get("/api/scores", params={"trace_id": seeded[1].id})).json()
    assert [s["value"] for s in listed["data"]] == [2.0]


async def test_delete_one_trace_takes_its_observations(
    state: ServerState, seeded: list[SeedTrace]
) -> None:
    target = seeded[5]
    async with asgi_client(state) as client:
        response = await client.delete(f"/api/traces/{target.id}")
        assert response.status_code == 200 and response.json() == {"deleted": 1}
        assert (await client.get(f"/api/traces/{target.id}")).status_code == 404
        for obs_id in target.observation_ids:
            assert (await client.get(f"/api/observations/{obs_id}")).status_code == 404
        assert (await client.delete(f"/api/traces/{target.id}")).status_code == 404
        remaining = await _ids(client, {"limit": 1000})
    assert set(remaining) == {t.id for t in seeded} - {target.id}


async def test_delete_by_filter(state: ServerState, seeded: list[SeedTrace]) -> None:
    async with asgi_client(state) as client:
        refused = await client.post("/api/traces/delete", json={})
        assert refused.status_code == 422
        assert "all" in refused.json()["error"]["message"]
        response = await client.post(
            "/api/traces/delete", json={"project": "beta", "metadata": {"env": "dev"}}
        )
        expected = {t.id for t in seeded if t.project == "beta" and t.metadata["env"] == "dev"}
        assert response.json() == {"deleted": len(expected)}
        remaining = await _ids(client, {"limit": 1000})
        assert set(remaining) == {t.id for t in seeded} - expected
        everything = await client.post("/api/traces/delete", json={"all": True})
        assert everything.json() == {"deleted": len(remaining)}
        assert await _ids(client, {"limit": 1000}) == []


async def test_health_stats_and_metrics(state: ServerState, seeded: list[SeedTrace]) -> None:
    async with asgi_client(state) as client:
        health = (await client.get("/api/health")).json()
        stats = (await client.get("/api/stats")).json()
        metrics = await client.get("/metrics")
    assert health["status"] == "ok" and health["backend"] == "sqlite"
    assert health["server_mode"] == "embedded"
    assert (health["tracing_mode"], health["storage"], health["forwarding"]) == (
        "local",
        "local",
        [],
    )
    assert health["data_dir"] == str(state.settings.data_dir.resolve())
    assert set(health) == {"status", "version", "backend", "tracing_mode", "storage",
                           "server_mode", "forwarding", "data_dir", "uptime_s"}  # fmt: skip
    assert stats["store"]["traces"] == len(seeded)
    assert stats["store"]["observations"] == 3 * len(seeded)
    assert stats["tracer"]["queue_max"] == state.settings.queue_maxsize
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    samples = {}
    for line in text.splitlines():
        if line.startswith("# TYPE"):
            _, _, name, kind = line.split()
            assert name.startswith("traceyard_")
            assert name.endswith("_total") == (kind == "counter"), line
        elif line and not line.startswith("#"):
            name_labels, value = line.rsplit(" ", 1)
            samples[name_labels] = float(value)
            labels = re.findall(r'(\w+)="', name_labels)
            assert set(labels) <= {"status", "version", "backend"}, line
    assert samples["traceyard_store_traces"] == len(seeded)
    assert samples["traceyard_queue_max"] == state.settings.queue_maxsize
    assert samples['traceyard_http_requests_total{status="2xx"}'] >= 2
    assert samples["traceyard_ingest_events_accepted_total"] == 0  # no ingestion yet


async def test_timeseries_buckets_and_groups(state: ServerState, seeded: list[SeedTrace]) -> None:
    start = datetime.fromtimestamp(BASE_NS / 1e9, tz=timezone.utc)
    params = {"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat(),
              "interval_s": 600}  # fmt: skip
    async with asgi_client(state) as client:
        plain = (await client.get("/api/metrics/timeseries", params=params)).json()
        grouped = (
            await client.get("/api/metrics/timeseries", params={**params, "group_by": "model"})
        ).json()
        bad = await client.get("/api/metrics/timeseries", params={**params, "end": params["start"]})
    assert plain["interval_s"] == 600
    counts = {p["bucket_start"]: p["traces"] for p in plain["data"] if p["traces"]}
    # one trace a minute for 40 minutes: 10 per 10-minute bucket
    assert sorted(counts.values()) == [10, 10, 10, 10]
    assert sum(p["errors"] for p in plain["data"]) == sum(t.error for t in seeded)
    assert sum(p["total_tokens"] for p in plain["data"]) == sum(t.tokens for t in seeded)
    assert {p["group"] for p in grouped["data"] if p["traces"]} == set(MODELS)
    assert bad.status_code == 422 and "start" in bad.json()["error"]["message"]


async def test_security_headers_on_pages_and_api(state: ServerState) -> None:
    async with asgi_client(state, ui=True) as client:
        for path in ("/", "/api/health"):
            response = await client.get(path)
            assert response.status_code == 200
            csp = response.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
            assert response.headers["x-content-type-options"] == "nosniff"


async def test_doubled_slashes_reach_the_route(state: ServerState) -> None:
    async with asgi_client(state) as client:
        response = await client.get(f"{client.base_url}//api//health")
        assert response.status_code == 200 and response.json()["status"] == "ok"

"""The UI's prompt API in-process (httpx ASGITransport): prompts made through the Langfuse
prompt API, generations that name them through Langfuse ingestion, then the query side."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from traceyard.capture.tracer import Tracer
from traceyard.server import routes_prompts
from traceyard.server.app import create_app
from traceyard.server.state import ServerState

PK, SK = "pk-lf-prompts", "sk-lf-prompts"
AUTH = (PK, SK)


@pytest.fixture
def keys() -> Iterator[None]:
    previous = os.environ.get("TRACEYARD_LANGFUSE_KEYS")
    os.environ["TRACEYARD_LANGFUSE_KEYS"] = f"{PK}:{SK}@shop"
    yield
    if previous is None:
        os.environ.pop("TRACEYARD_LANGFUSE_KEYS", None)
    else:
        os.environ["TRACEYARD_LANGFUSE_KEYS"] = previous


@pytest.fixture
async def http(keys: None, data_dir: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Tracer]]:
    tracer = Tracer.create(data_dir=data_dir, start_server=False, worker_batch_timeout=0.02)
    assert tracer.store is not None
    app = create_app(ServerState(store=tracer.store, settings=tracer.settings, tracer=tracer))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield client, tracer
    tracer.stop()


def _generation(trace_id: str, name: str, version: int | None) -> list[dict[str, Any]]:
    def event(kind: str, body: dict[str, Any]) -> dict[str, Any]:
        return {"id": uuid.uuid4().hex, "type": kind, "timestamp": "2026-05-01T10:00:00Z",
                "body": body}  # fmt: skip

    generation: dict[str, Any] = {"id": f"{trace_id}-g", "traceId": trace_id, "name": "llm",
                                  "model": "gpt-4o-mini", "startTime": "2026-05-01T10:00:00Z",
                                  "promptName": name}  # fmt: skip
    if version is not None:
        generation["promptVersion"] = version
    return [event("trace-create", {"id": trace_id, "name": f"run {trace_id}"}),
            event("generation-create", generation)]  # fmt: skip


async def _seed(client: httpx.AsyncClient, tracer: Tracer) -> None:
    for body in (
        {"name": "support/answer", "prompt": "Answer {{question}} briefly.",
         "labels": ["production"], "config": {"temperature": 0.2}},
        {"name": "support/answer", "type": "chat", "labels": ["staging"],
         "prompt": [{"role": "system", "content": "You answer support questions."},
                    {"role": "user", "content": "{{question}}"}]},
        {"name": "classify", "prompt": "Classify: {{text}}", "tags": ["triage"]},
    ):  # fmt: skip
        created = await client.post("/api/public/v2/prompts", auth=AUTH, json=body)
        assert created.status_code == 200, created.text
    batch = [
        *_generation("t1", "support/answer", 1),
        *_generation("t2", "support/answer", 1),
        *_generation("t3", "support/answer", 2),
        *_generation("t4", "support/answer", None),
    ]
    sent = await client.post("/api/public/ingestion", auth=AUTH, json={"batch": batch})
    assert sent.status_code == 207 and not sent.json()["errors"], sent.text
    assert tracer.flush(10) == 0


async def test_prompt_list_detail_and_the_traces_of_a_version(
    http: tuple[httpx.AsyncClient, Tracer],
) -> None:
    client, tracer = http
    await _seed(client, tracer)

    listed = await client.get("/api/prompts")
    assert listed.status_code == 200, listed.text
    summaries = {p["name"]: p for p in listed.json()["data"]}
    answer = summaries["support/answer"]
    assert (answer["project"], answer["type"], answer["latest_version"]) == ("shop", "chat", 2)
    assert answer["version_count"] == 2
    assert answer["labels"] == {"production": 1, "staging": 2, "latest": 2}
    assert (answer["observations"], answer["traces"]) == (4, 4)
    assert (summaries["classify"]["traces"], summaries["classify"]["tags"]) == (0, ["triage"])
    assert (await client.get("/api/prompts", params={"project": "elsewhere"})).json() == {
        "data": []
    }

    detail = await client.get("/api/prompts/support/answer", params={"project": "shop"})
    assert detail.status_code == 200, detail.text
    body = detail.json()
    v2, v1 = body["versions"]
    assert (v2["version"], v2["type"], v2["labels"], v2["traces"]) == (
        2,
        "chat",
        ["staging", "latest"],
        1,
    )
    assert v2["prompt"][0] == {"role": "system", "content": "You answer support questions."}
    assert (v1["version"], v1["type"], v1["config"], v1["traces"], v1["observations"]) == (
        1, "text", {"temperature": 0.2}, 2, 2,
    )  # fmt: skip
    assert v1["created_at"] and v1["prompt"] == "Answer {{question}} briefly."
    assert body["unversioned"]["traces"] == 1

    async def traces(**params: Any) -> list[str]:
        response = await client.get("/api/traces", params=params)
        assert response.status_code == 200, response.text
        return sorted(t["id"] for t in response.json()["data"])

    assert await traces(prompt_name="support/answer", prompt_version=1) == ["t1", "t2"]
    assert await traces(prompt_name="support/answer", prompt_version=2) == ["t3"]
    assert await traces(prompt_name="support/answer") == ["t1", "t2", "t3", "t4"]
    assert await traces(prompt_name="support/answer", prompt_version=2, project="other") == []
    # the generation names the version it used
    generation = (await client.get("/api/observations/t3-g")).json()
    assert (generation["prompt_name"], generation["prompt_version"]) == ("support/answer", 2)


async def test_prompt_errors_are_clear_4xx(http: tuple[httpx.AsyncClient, Tracer]) -> None:
    client, _ = http
    missing = await client.get("/api/prompts/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "no prompt 'nope' in project 'default'"
    lone_version = await client.get("/api/traces", params={"prompt_version": 2})
    assert lone_version.status_code == 422
    assert "prompt_version needs prompt_name" in lone_version.json()["error"]["message"]
    bad_version = await client.get("/api/traces", params={"prompt_name": "p", "prompt_version": 0})
    assert bad_version.status_code == 422
    delete = await client.post("/api/traces/delete", json={"prompt_version": 1})
    assert delete.status_code == 422


async def test_delete_by_prompt_version(http: tuple[httpx.AsyncClient, Tracer]) -> None:
    client, tracer = http
    await _seed(client, tracer)
    deleted = await client.post(
        "/api/traces/delete", json={"prompt_name": "support/answer", "prompt_version": 1}
    )
    assert deleted.json() == {"deleted": 2}
    left = (await client.get("/api/traces")).json()["data"]
    assert sorted(t["id"] for t in left) == ["t3", "t4"]


async def test_use_counts_stop_at_the_limit_and_say_so(
    http: tuple[httpx.AsyncClient, Tracer], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, tracer = http
    await _seed(client, tracer)
    monkeypatch.setattr(routes_prompts, "USAGE_COUNT_LIMIT", 2)
    body = (await client.get("/api/prompts/support/answer", params={"project": "shop"})).json()
    v2, v1 = body["versions"]
    assert (v1["observations"], v1["counts_capped"]) == (2, True)  # two links: the limit
    assert (v2["observations"], v2["counts_capped"]) == (1, False)
    [summary] = [p for p in (await client.get("/api/prompts")).json()["data"] if p["traces"]]
    assert summary["counts_capped"] is True

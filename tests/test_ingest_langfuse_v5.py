"""The latest Langfuse SDK (v5, OTLP path), unchanged, against a live traceyard over loopback.

One realistic app run (the wire notes' v5 scenario) is sent once per module; each test checks
one aspect of what was stored against what the app sent.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ingest_support import LiveServer, live_server, wait_for
from langfuse import Langfuse, observe, propagate_attributes
from langfuse.media import LangfuseMedia

from traceyard.model import Level, ObservationType, ScoreDataType, TraceDetail

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("v5"), public_key="pk-lf-v5") as live:
        yield live


@pytest.fixture(scope="module")
def sent(server: LiveServer) -> dict[str, Any]:
    """Run the app once with the real SDK; returns the ids it produced."""
    lf = Langfuse(
        public_key=server.public_key,
        secret_key=server.secret_key,
        host=server.url,
        environment="staging",
        release="r-42",
    )
    assert lf.auth_check()
    text_prompt = lf.create_prompt(
        name="greet", prompt="Hello {{name}}", labels=["production"], type="text"
    )
    lf.create_prompt(
        name="chatty",
        type="chat",
        prompt=[
            {"role": "system", "content": "You are {{persona}}"},
            {"type": "placeholder", "name": "history"},
        ],
        labels=["staging"],
        config={"model": "gpt-4o-mini"},
    )
    lf.create_prompt(name="greet", prompt="Hi {{name}}!", labels=[], type="text")
    prompt = lf.get_prompt("greet")  # the production label: version 1
    ids: dict[str, Any] = {"prompt_version": prompt.version, "created": text_prompt.version}

    @observe(name="retrieve", as_type="retriever")
    def retrieve(query: str) -> list[str]:
        return ["doc-1", "doc-2"]

    @observe(name="llm", as_type="generation")
    def llm(question: str) -> str:
        lf.update_current_generation(
            model="gpt-4o-mini",
            model_parameters={"temperature": 0.2, "max_tokens": 100},
            usage_details={"input": 12, "output": 7, "cache_read_input_tokens": 4},
            prompt=prompt,
        )
        ids["generation"] = lf.get_current_observation_id()
        return "Paris"

    @observe(name="priced-by-client", as_type="generation")
    def client_cost() -> str:
        lf.update_current_generation(
            model="gpt-4o-mini",
            usage_details={"input": 100, "output": 50},
            cost_details={"input": 0.25, "output": 0.5, "total": 0.75},
        )
        return "ok"

    @observe(name="tool-call", as_type="tool")
    def tool(x: int) -> int:
        return x * 2

    @observe(name="fails")
    def fails() -> None:
        raise ValueError("boom")

    @observe(name="with-media")
    def with_media() -> str:
        # The SDK uploads media set through an update (the decorator only serialises args).
        image = LangfuseMedia(content_bytes=PNG, content_type="image/png")
        lf.update_current_span(input={"image": image})
        return "seen"

    @observe(name="agent")
    def agent(question: str) -> str:
        with propagate_attributes(
            user_id="user-1",
            session_id="session-1",
            tags=["prod", "v5"],
            metadata={"team": "search", "tier": "gold"},
            trace_name="qa-run",
            version="app-1.2",
        ):
            ids["trace"] = lf.get_current_trace_id()
            ids["root"] = lf.get_current_observation_id()
            retrieve(question)
            answer = llm(question)
            client_cost()
            tool(21)
            lf.create_event(name="cache-miss", level="WARNING", input={"key": "q"})
            with contextlib.suppress(ValueError):
                fails()
            with_media()
            lf.update_current_span(metadata={"step": "done"})
            lf.score_current_trace(name="correct", value=1, data_type="BOOLEAN")
            lf.score_current_span(name="helpful", value="very", data_type="CATEGORICAL")
            return answer

    agent("What is the capital of France?")
    lf.create_score(name="quality", value=0.9, trace_id=ids["trace"], comment="good")
    lf.create_score(
        name="obs-quality", value=0.5, trace_id=ids["trace"], observation_id=ids["generation"]
    )
    lf.create_score(name="session-nps", value=8, session_id="session-1")
    lf.update_prompt(name="greet", version=2, new_labels=["production"])
    ids["after_update"] = lf.get_prompt("greet", cache_ttl_seconds=0).version
    ids["by_version"] = lf.get_prompt("greet", version=1).prompt
    ids["chat"] = lf.get_prompt("chatty", label="staging", type="chat")
    lf.flush()
    lf.shutdown()
    return ids


def _trace(server: LiveServer, sent: dict[str, Any]) -> TraceDetail:
    def stored() -> TraceDetail | None:
        server.flush()
        trace = server.store.get_trace(sent["trace"])
        return trace if trace is not None and trace.observation_count >= 8 else None

    return wait_for(stored, what="the v5 trace")


def test_tree_names_and_types(server: LiveServer, sent: dict[str, Any]) -> None:
    trace = _trace(server, sent)
    by_name = {o.name: o for o in trace.observations}
    assert set(by_name) == {
        "agent",
        "retrieve",
        "llm",
        "priced-by-client",
        "tool-call",
        "cache-miss",
        "fails",
        "with-media",
    }
    root = by_name["agent"]
    assert root.id == sent["root"] and root.parent_id is None
    assert all(o.parent_id == root.id for o in trace.observations if o is not root)
    assert by_name["retrieve"].type is ObservationType.RETRIEVER
    assert by_name["llm"].type is ObservationType.GENERATION
    assert by_name["tool-call"].type is ObservationType.TOOL
    assert by_name["cache-miss"].type is ObservationType.EVENT
    assert by_name["retrieve"].output == ["doc-1", "doc-2"]
    assert by_name["tool-call"].input == {"args": [21], "kwargs": {}}
    assert by_name["tool-call"].output == 42


def test_trace_fields_from_propagated_attributes(server: LiveServer, sent: dict[str, Any]) -> None:
    trace = _trace(server, sent)
    assert trace.project == server.project
    assert trace.name == "qa-run"
    assert trace.user_id == "user-1"
    assert trace.session_id == "session-1"
    assert set(trace.tags) == {"prod", "v5"}
    # v5 JSON-encodes metadata values; stored decoded, and apart from our OTel bookkeeping.
    assert trace.metadata["team"] == "search" and trace.metadata["tier"] == "gold"
    assert "otel" not in trace.metadata or "attributes" not in trace.metadata["otel"]
    assert trace.version == "app-1.2"
    assert trace.release == "r-42"
    assert trace.environment == "staging"
    assert trace.input == {"args": ["What is the capital of France?"], "kwargs": {}}
    assert trace.output == "Paris"


def test_generation_usage_cost_model_and_prompt_link(
    server: LiveServer, sent: dict[str, Any]
) -> None:
    trace = _trace(server, sent)
    llm = next(o for o in trace.observations if o.name == "llm")
    assert llm.id == sent["generation"]
    assert llm.model == "gpt-4o-mini"
    assert llm.model_parameters == {"temperature": 0.2, "max_tokens": 100}
    # Langfuse's "input" excludes the cache: the buckets stay disjoint.
    assert llm.usage == {"input": 12, "cache_read": 4, "output": 7, "total": 23}
    assert llm.cost["input"] == pytest.approx(12 * 1.5e-7)
    assert llm.cost["output"] == pytest.approx(7 * 6e-7)
    assert llm.cost["total"] > llm.cost["input"] + llm.cost["output"]  # cache reads are priced
    assert (llm.prompt_name, llm.prompt_version) == ("greet", sent["prompt_version"])
    client = next(o for o in trace.observations if o.name == "priced-by-client")
    assert client.cost == {"input": 0.25, "output": 0.5, "total": 0.75}  # the client's cost wins


def test_levels_errors_metadata_and_events(server: LiveServer, sent: dict[str, Any]) -> None:
    trace = _trace(server, sent)
    by_name = {o.name: o for o in trace.observations}
    failed = by_name["fails"]
    assert failed.level is Level.ERROR
    assert failed.status_message is not None and "boom" in failed.status_message
    assert trace.error_count == 1
    event = by_name["cache-miss"]
    assert event.level is Level.WARNING
    assert event.input == {"key": "q"}
    assert event.start_time == event.end_time
    root = by_name["agent"]
    assert root.metadata["step"] == "done"  # the span's own metadata, decoded
    assert root.metadata["otel"]["scope"]["name"] == "langfuse-sdk"


def test_scores(server: LiveServer, sent: dict[str, Any]) -> None:
    _trace(server, sent)

    def scores() -> dict[str, Any] | None:
        server.flush()
        found = {s.name: s for s in server.store.list_scores(limit=100).data}
        return found if len(found) >= 5 else None

    found = wait_for(scores, what="five scores")
    assert found["quality"].value == 0.9 and found["quality"].comment == "good"
    assert found["quality"].trace_id == sent["trace"]
    assert found["correct"].data_type is ScoreDataType.BOOLEAN and found["correct"].value == 1
    assert found["helpful"].data_type is ScoreDataType.CATEGORICAL
    assert found["helpful"].string_value == "very"
    assert found["helpful"].observation_id == sent["root"]
    assert found["obs-quality"].observation_id == sent["generation"]
    assert found["session-nps"].session_id == "session-1"
    assert found["session-nps"].trace_id is None


def test_prompts_versions_labels_and_chat(server: LiveServer, sent: dict[str, Any]) -> None:
    assert sent["created"] == 1
    assert sent["prompt_version"] == 1  # "production" was on version 1 at first
    assert sent["after_update"] == 2  # then moved to version 2 by update_prompt
    assert sent["by_version"] == "Hello {{name}}"
    chat = sent["chat"]
    assert chat.version == 1 and chat.config == {"model": "gpt-4o-mini"}
    assert chat.compile(persona="a pirate", history=[{"role": "user", "content": "hi"}]) == [
        {"role": "system", "content": "You are a pirate"},
        {"role": "user", "content": "hi"},
    ]
    stored = server.store.get_prompt(server.project, "greet", label="production")
    assert stored is not None and stored.version == 2 and stored.prompt == "Hi {{name}}!"


def test_media_uploaded_and_linked(server: LiveServer, sent: dict[str, Any]) -> None:
    trace = _trace(server, sent)
    media_span = next(o for o in trace.observations if o.name == "with-media")
    digest = base64.b64encode(hashlib.sha256(PNG).digest()).decode()
    media_id = digest.replace("+", "-").replace("/", "_")[:22]
    assert f"id={media_id}" in str(media_span.input)  # the SDK's reference string
    record = wait_for(
        lambda: (m := server.store.get_media(media_id)) and m.data is not None and m,
        what="the uploaded media",
    )
    assert record.data == PNG and record.content_type == "image/png"
    assert record.trace_id == sent["trace"] and record.observation_id == media_span.id
    auth = (server.public_key, server.secret_key)
    info = httpx.get(f"{server.url}/api/public/media/{media_id}", auth=auth).json()
    assert info["mediaId"] == media_id and info["contentLength"] == len(PNG)
    assert httpx.get(info["url"]).content == PNG


def test_flush_then_shutdown_lose_nothing(server: LiveServer, sent: dict[str, Any]) -> None:
    """After the SDK's flush/shutdown, everything is durable once our writer drains."""
    _trace(server, sent)
    stats = server.tracer.stats()
    assert stats.events_dropped == 0
    counts = server.store.counts()
    assert counts.observations == 8 and counts.traces == 1


def test_read_routes_serve_the_trace(
    server: LiveServer, sent: dict[str, Any], tmp_path: Path
) -> None:
    _trace(server, sent)
    auth = (server.public_key, server.secret_key)
    listed = httpx.get(f"{server.url}/api/public/traces", auth=auth, params={"userId": "user-1"})
    assert listed.status_code == 200
    assert [t["id"] for t in listed.json()["data"]] == [sent["trace"]]
    detail = httpx.get(f"{server.url}/api/public/traces/{sent['trace']}", auth=auth).json()
    assert detail["sessionId"] == "session-1" and len(detail["observations"]) == 8
    generation = next(o for o in detail["observations"] if o["name"] == "llm")
    assert generation["type"] == "GENERATION" and generation["promptName"] == "greet"
    assert {s["name"] for s in detail["scores"]} >= {"quality", "correct"}
    sessions = httpx.get(f"{server.url}/api/public/sessions", auth=auth).json()
    assert [s["id"] for s in sessions["data"]] == ["session-1"]
    observations = httpx.get(
        f"{server.url}/api/public/observations",
        auth=auth,
        params={"traceId": sent["trace"], "type": "GENERATION"},
    ).json()
    assert {o["name"] for o in observations["data"]} == {"llm", "priced-by-client"}

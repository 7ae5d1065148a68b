"""Langfuse SDK 2.x (the legacy /api/public/ingestion batch path), unchanged, in its own venv.

The v2 SDK pins dependencies that conflict with the dev environment's v5, so it runs as a
subprocess from a cached venv (tests/ingest_support.py); it also reads everything back through
its own fetch_* API, which checks our Langfuse-shaped read routes with the SDK's own models.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from ingest_support import LiveServer, live_server, run_client, wait_for

from traceyard.model import Level, ObservationType, ScoreDataType

CLIENT = r"""
import base64, json, os, time
from langfuse import Langfuse
from langfuse.decorators import observe, langfuse_context
from langfuse.media import LangfuseMedia

lf = Langfuse()
assert lf.auth_check()
PNG = base64.b64decode(os.environ["PNG_B64"])

prompt_v1 = lf.create_prompt(name="p2", prompt="Hi {{x}}", labels=["production"])
prompt = lf.get_prompt("p2")

trace = lf.trace(
    name="v2-run", user_id="user-2", session_id="session-2", tags=["legacy", "v2"],
    metadata={"team": "ops", "n": 3}, input={"question": "hi"}, release="rel-2", version="ver-2",
)
retrieve = trace.span(name="retrieve", input="hi", metadata={"k": "v"})
inner = retrieve.generation(
    name="embed", model="text-embedding-3-small", usage={"input": 5, "output": 0, "unit": "TOKENS"},
)
inner.end()
retrieve.end(output=["d1", "d2"])
generation = trace.generation(
    name="llm", model="gpt-4o-mini", model_parameters={"temperature": "0.2", "max_tokens": 50},
    input=[{"role": "user", "content": "hi"}],
    usage={"promptTokens": 12, "completionTokens": 7, "totalTokens": 19},
    prompt=prompt,
)
generation.end(output="hello")
costed = trace.generation(
    name="costed", model="gpt-4o-mini", usage_details={"input": 10, "output": 5},
    cost_details={"input": 0.1, "output": 0.2},
)
costed.end()
trace.event(name="warned", level="WARNING", input={"why": "slow"})
trace.span(name="broken", level="ERROR", status_message="ValueError: boom").end()
image = LangfuseMedia(content_bytes=PNG, content_type="image/png")
trace.span(name="with-media", input={"img": image}).end()
trace.score(name="quality", value=0.8, comment="fine")
trace.score(name="label", value="good", data_type="CATEGORICAL")
generation.score(name="obs-score", value=1, data_type="BOOLEAN")
trace.update(output={"answer": "hello"})

@observe()
def decorated(x):
    langfuse_context.update_current_trace(user_id="user-3", tags=["decorated"])
    return helper(x)

@observe(as_type="generation")
def helper(x):
    langfuse_context.update_current_observation(
        model="gpt-4o-mini", usage={"input": 3, "output": 4}
    )
    return x * 2

assert decorated(21) == 42
decorated_trace = langfuse_context.get_current_trace_id()
langfuse_context.flush()
lf.flush()

deadline = time.time() + 20
while True:
    try:
        fetched = lf.fetch_trace(trace.id).data
        # Scores travel in their own batch, so they may land a moment after the tree.
        if len(fetched.observations) >= 7 and len(fetched.scores) >= 3:
            break
    except Exception:
        pass
    assert time.time() < deadline, "trace not readable in time"
    time.sleep(0.1)
listed = lf.fetch_traces(user_id="user-2").data
observations = lf.fetch_observations(trace_id=trace.id, type="GENERATION").data
sessions = lf.fetch_sessions().data
print(json.dumps({
    "trace": trace.id,
    "generation": generation.id,
    "retrieve": retrieve.id,
    "prompt_version": prompt.version,
    "fetched_name": fetched.name,
    "fetched_observations": sorted(o.name for o in fetched.observations),
    "fetched_scores": sorted(s.name for s in fetched.scores),
    "listed": [t.id for t in listed],
    "generations": sorted(o.name for o in observations),
    "sessions": sorted(s.id for s in sessions),
}))
lf.shutdown()
"""

PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5E"
    "rkJggg=="
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("v2"), public_key="pk-lf-v2") as live:
        yield live


@pytest.fixture(scope="module")
def sent(server: LiveServer) -> dict[str, Any]:
    out = run_client(
        CLIENT,
        {
            "LANGFUSE_PUBLIC_KEY": server.public_key,
            "LANGFUSE_SECRET_KEY": server.secret_key,
            "LANGFUSE_HOST": server.url,
            "PNG_B64": PNG_B64,
        },
    )
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def test_tree_and_trace_fields(server: LiveServer, sent: dict[str, Any]) -> None:
    server.flush()
    trace = server.store.get_trace(sent["trace"])
    assert trace is not None and trace.project == server.project
    assert trace.name == "v2-run"
    assert (trace.user_id, trace.session_id) == ("user-2", "session-2")
    assert set(trace.tags) == {"legacy", "v2"}
    assert trace.metadata["team"] == "ops" and trace.metadata["n"] == 3
    assert (trace.release, trace.version) == ("rel-2", "ver-2")
    assert trace.input == {"question": "hi"}
    assert trace.output == {"answer": "hello"}  # the update merged into the same trace
    by_name = {o.name: o for o in trace.observations}
    assert set(by_name) == {"retrieve", "embed", "llm", "costed", "warned", "broken", "with-media"}
    assert by_name["embed"].parent_id == sent["retrieve"]
    assert by_name["retrieve"].parent_id is None
    assert by_name["retrieve"].output == ["d1", "d2"]  # span-update merged into span-create
    assert by_name["retrieve"].end_time is not None
    assert by_name["retrieve"].metadata["k"] == "v"
    assert by_name["warned"].type is ObservationType.EVENT
    assert by_name["warned"].level is Level.WARNING
    assert by_name["broken"].level is Level.ERROR
    assert by_name["broken"].status_message == "ValueError: boom"


def test_generations_usage_cost_and_prompt(server: LiveServer, sent: dict[str, Any]) -> None:
    server.flush()
    trace = server.store.get_trace(sent["trace"])
    assert trace is not None
    by_name = {o.name: o for o in trace.observations}
    llm = by_name["llm"]
    assert llm.type is ObservationType.GENERATION and llm.id == sent["generation"]
    assert llm.model == "gpt-4o-mini"
    assert llm.model_parameters == {"temperature": "0.2", "max_tokens": 50}
    assert llm.usage == {"input": 12, "output": 7, "total": 19}
    assert llm.cost["total"] == pytest.approx(12 * 1.5e-7 + 7 * 6e-7)
    assert (llm.prompt_name, llm.prompt_version) == ("p2", sent["prompt_version"])
    assert llm.output == "hello"
    costed = by_name["costed"]
    assert costed.cost == {"input": 0.1, "output": 0.2, "total": pytest.approx(0.3)}


def test_scores_and_decorator_trace(server: LiveServer, sent: dict[str, Any]) -> None:
    server.flush()
    scores = {s.name: s for s in server.store.list_scores(trace_id=sent["trace"]).data}
    assert scores["quality"].value == 0.8 and scores["quality"].comment == "fine"
    assert scores["label"].data_type is ScoreDataType.CATEGORICAL
    assert scores["label"].string_value == "good"
    assert scores["obs-score"].observation_id == sent["generation"]
    assert scores["obs-score"].data_type is ScoreDataType.BOOLEAN
    decorated = [t for t in server.traces() if t.user_id == "user-3"]
    assert len(decorated) == 1
    (trace,) = decorated
    assert trace.tags == ["decorated"] and trace.output == 42
    (helper,) = trace.observations
    assert helper.type is ObservationType.GENERATION and helper.usage["total"] == 7


def test_media_and_read_api_through_the_sdk(server: LiveServer, sent: dict[str, Any]) -> None:
    server.flush()
    trace = server.store.get_trace(sent["trace"])
    assert trace is not None
    media_span = next(o for o in trace.observations if o.name == "with-media")
    reference = str(media_span.input)
    media_id = reference.split("|id=")[1].split("|")[0]
    record = wait_for(lambda: server.store.get_media(media_id), what="media record")
    assert record.data is not None and record.observation_id == media_span.id
    # What the v2 SDK itself read back through /api/public/traces, /observations, /sessions.
    assert sent["fetched_name"] == "v2-run"
    assert "llm" in sent["fetched_observations"] and len(sent["fetched_observations"]) == 7
    assert sent["fetched_scores"] == ["label", "obs-score", "quality"]
    assert sent["listed"] == [sent["trace"]]
    assert sent["generations"] == ["costed", "embed", "llm"]
    assert "session-2" in sent["sessions"]

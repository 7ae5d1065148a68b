"""Forwarding into a real Arize Phoenix server over loopback (OTLP/HTTP, protobuf, gzip).

traceyard stores locally and forwards (``local+forward``); then Phoenix's own REST API must
show what the local store holds: the same trace, span names, tree, OpenInference span kinds,
model, token counts, input/output, error status, user and session. What Phoenix does with the
spans (its decoding, its session and token roll-ups) is Phoenix's own code, version-pinned in
tests/phoenix-requirements.txt.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from ingest_support import wait_for
from phoenix_support import Phoenix, phoenix_server, pinned_version
from remote_support import clean_routing_env

from traceyard.capture.tracer import Tracer
from traceyard.demo import build_agent
from traceyard.forward.otlp_pb import span_id_bytes
from traceyard.model import Level, Observation, TraceDetail
from traceyard.pipeline.routing import sink_stats
from traceyard.store.base import TraceQuery

# One Phoenix (slow to start) for the module; its startup counts against the first test.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]

#: OpenInference span kinds, spelled out here rather than taken from the forwarder.
KINDS = {
    "generation": "LLM",
    "chain": "CHAIN",
    "tool": "TOOL",
    "agent": "AGENT",
    "retriever": "RETRIEVER",
    "span": "UNKNOWN",
    "event": "UNKNOWN",
}


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phoenix]:
    with phoenix_server(tmp_path_factory.mktemp("phoenix")) as server:
        assert server.version() == pinned_version()
        yield server


def _forwarding_tracer(data_dir: Path, phoenix: Phoenix, project: str) -> Tracer:
    target = {"type": "otlp", "endpoint": phoenix.traces_endpoint, "flush_interval_s": 0.05}
    with clean_routing_env():
        os.environ["TRACEYARD_FORWARD_TARGETS"] = json.dumps([target])
        return Tracer.create(
            data_dir=data_dir, project=project, start_server=False, worker_batch_timeout=0.05
        )


def _stop_and_collect(
    tracer: Tracer, phoenix: Phoenix, resent: tuple[int, ...] = (0,)
) -> tuple[TraceDetail, list[Any]]:
    """The one trace as the local store kept it, and its spans once all are in Phoenix;
    ``resent``: how often the root span may have been sent again, to carry trace attributes
    that came after it."""
    assert tracer.flush(10) == 0 and tracer.store is not None
    (summary,) = tracer.store.list_traces(TraceQuery()).data
    local = tracer.store.get_trace(summary.id)
    assert local is not None
    tracer.stop()  # drains the forwarder
    stats = sink_stats(tracer._sink)["forwarding"][f"otlp {phoenix.traces_endpoint}"]
    assert (stats["failed"], stats["dropped"]) == (0, 0), stats
    assert stats["sent"] - len(local.observations) in resent, stats

    def all_arrived() -> list[Any] | None:  # Phoenix inserts what it received in batches
        got = phoenix.spans(tracer.project)
        return got if len(got) >= len(local.observations) else None

    spans = wait_for(all_arrived, timeout=30, what=f"the spans of {tracer.project} in Phoenix")
    assert len(spans) == len(local.observations)
    assert {s["context"]["trace_id"] for s in spans} == {local.id}  # trace ids are OTel's
    return local, spans


def _phoenix_span(spans: list[Any], observation: Observation) -> Any:
    """Ids that are not OTel-shaped (LangChain's run UUIDs) travel hashed to 8 bytes,
    parents with them, so the tree holds; 16-hex ids travel as themselves."""
    span_id = span_id_bytes(observation.id).hex()
    (span,) = [s for s in spans if s["context"]["span_id"] == span_id]
    return span


def _value(attributes: dict[str, Any], which: str) -> Any:
    """``input``/``output`` as Phoenix holds them, decoded by their MIME type."""
    value = attributes[f"{which}.value"]
    if attributes[f"{which}.mime_type"] == "application/json":
        return json.loads(value)
    assert attributes[f"{which}.mime_type"] == "text/plain"
    return value


def _path(spans: list[Any], span: Any) -> list[str]:
    """Names from the root down to ``span``, through Phoenix's own parent ids."""
    by_id = {s["context"]["span_id"]: s for s in spans}
    names = [span["name"]]
    while span["parent_id"] is not None:
        span = by_id[span["parent_id"]]
        names.append(span["name"])
    return names[::-1]


def _tokens(observation: Observation) -> tuple[int, int, int]:
    """OpenInference's prompt/completion/total: prompt and completion INCLUDE their cache
    and reasoning parts, which traceyard keeps in disjoint buckets."""
    u = observation.usage
    prompt = u.get("input", 0) + u.get("cache_read", 0) + u.get("cache_write", 0)
    completion = u.get("output", 0) + u.get("reasoning", 0)
    return int(prompt), int(completion), int(u["total"])


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _assert_same_span(local: Observation, span: Any) -> None:
    """What every forwarded span must keep, whatever captured it."""
    a = span["attributes"]
    assert span["name"] == local.name
    assert span["span_kind"] == KINDS[local.type.value], local.name
    if local.parent_id is None:
        assert span["parent_id"] is None
    else:
        assert span["parent_id"] == span_id_bytes(local.parent_id).hex(), local.name
    assert local.start_time is not None and local.end_time is not None
    # Phoenix keeps microseconds
    assert abs((_when(span["start_time"]) - local.start_time).total_seconds()) <= 1e-6
    assert abs((_when(span["end_time"]) - local.end_time).total_seconds()) <= 1e-6
    for which, value in (("input", local.input), ("output", local.output)):
        if value is None:
            assert f"{which}.value" not in a, local.name
        else:
            assert _value(a, which) == value, (local.name, which)
    if local.level is Level.ERROR:
        assert span["status_code"] == "ERROR", local.name
        assert span["status_message"] == local.status_message
    else:
        assert span["status_code"] != "ERROR", local.name
    if local.model:
        assert a["llm.model_name"] == local.model
    if local.usage:
        got = (
            a["llm.token_count.prompt"],
            a["llm.token_count.completion"],
            a["llm.token_count.total"],
        )
        assert got == _tokens(local), local.name
        if local.usage.get("cache_read"):
            assert a["llm.token_count.prompt_details.cache_read"] == local.usage["cache_read"]
        if local.usage.get("reasoning"):
            assert a["llm.token_count.completion_details.reasoning"] == local.usage["reasoning"]


def test_a_langgraph_agent_run_keeps_its_meaning_in_phoenix(
    tmp_path: Path, phoenix: Phoenix
) -> None:
    tracer = _forwarding_tracer(tmp_path / "data", phoenix, "langgraph-agent")
    session = f"alice-{uuid.uuid4().hex[:8]}"  # Phoenix's session ids span all projects
    config = {
        "callbacks": [tracer.handler],
        "metadata": {"user_id": "alice", "thread_id": session, "app": "demo"},
        "tags": ["demo"],
        "run_name": "weather-agent",
    }
    question = {"messages": [("user", "What is the weather in Paris? Try the lookup, may fail.")]}
    for _chunk in build_agent().stream(question, config=config, stream_mode="messages"):
        pass
    # LangChain sets the trace's output just after the root run ended: when the forwarder
    # sent the root span in between, it sends it again with it
    local, spans = _stop_and_collect(tracer, phoenix, resent=(0, 1))

    # the local store kept the whole run (local+forward)
    assert (local.name, local.user_id, local.session_id) == ("weather-agent", "alice", session)
    assert Counter(o.type.value for o in local.observations) == {
        "chain": 6,
        "generation": 2,
        "tool": 2,
    }

    # span by span: name, kind, parent, times, input/output, model, tokens, error
    for observation in local.observations:
        _assert_same_span(observation, _phoenix_span(spans, observation))

    # the tree as Phoenix's own parent ids draw it
    paths = sorted(_path(spans, s) for s in spans)
    assert paths.count(["weather-agent", "agent", "ScriptedChatModel"]) == 2
    assert ["weather-agent", "tools", "get_weather"] in paths
    assert ["weather-agent", "tools", "flaky_lookup"] in paths
    (failed,) = [s for s in spans if s["status_code"] == "ERROR"]
    assert failed["name"] == "flaky_lookup"
    assert failed["status_message"] == "RuntimeError: lookup service unavailable for 'x'"

    # user and session on every span; Phoenix groups the trace into the session
    assert {s["attributes"]["user.id"] for s in spans} == {"alice"}
    assert {s["attributes"]["session.id"] for s in spans} == {session}
    assert {tuple(s["attributes"]["tag.tags"]) for s in spans} == {("demo",)}
    assert phoenix.session_traces(session) == [local.id]

    # Phoenix's own roll-up of the trace's tokens matches ours
    (trace,) = phoenix.get(f"/v1/projects/{tracer.project}/traces")["data"]
    generations = [o for o in local.observations if o.usage]
    assert trace["token_count_prompt"] == sum(_tokens(o)[0] for o in generations)
    assert trace["token_count_completion"] == sum(_tokens(o)[1] for o in generations)
    assert trace["token_count_total"] == local.total_tokens


def test_a_direct_api_generation_keeps_model_usage_and_io_in_phoenix(
    tmp_path: Path, phoenix: Phoenix
) -> None:
    tracer = _forwarding_tracer(tmp_path / "data", phoenix, "direct-api")
    session = f"sess-{uuid.uuid4().hex[:8]}"
    parameters = {"temperature": 0.2, "max_tokens": 256}
    with tracer.span("support agent", as_type="agent", input={"question": "refund?"}) as root:
        tracer.update_trace(
            user_id="user-7",
            session_id=session,
            tags=["prod", "support"],
            metadata={"tenant": "acme", "plan": {"tier": 2}},
        )
        with tracer.span("lookup", as_type="retriever", input="refund policy") as lookup:
            lookup.update(output=[{"doc": "policy.md", "score": 0.9}])
        with tracer.generation(
            "answer",
            model="gpt-4o-mini",
            input=[{"role": "user", "content": "refund?"}],
            model_parameters=parameters,
        ) as generation:
            generation.update(
                output={"role": "assistant", "content": "Yes, within 30 days."},
                usage={"input": 80, "cache_read": 20, "output": 30, "reasoning": 10, "total": 140},
                cost={"input": 0.0008, "cache_read": 0.0001, "output": 0.0012, "total": 0.0021},
            )
        tracer.event("cache hit", input={"key": "refund"}, level=Level.WARNING)
        with tracer.span("flaky call") as bad:
            bad.update(level=Level.ERROR, status_message="TimeoutError: upstream")
        root.update(output="Yes, within 30 days.")
    local, spans = _stop_and_collect(tracer, phoenix)

    assert [o.name for o in local.observations] == [
        "support agent",
        "lookup",
        "answer",
        "cache hit",
        "flaky call",
    ]
    assert (local.user_id, local.session_id) == ("user-7", session)
    for observation in local.observations:
        _assert_same_span(observation, _phoenix_span(spans, observation))

    by_name = {s["name"]: s for s in spans}
    answer = by_name["answer"]["attributes"]
    assert json.loads(answer["llm.invocation_parameters"]) == parameters
    assert answer["llm.cost.total"] == pytest.approx(0.0021)
    tokens = ("prompt", "completion", "total", "prompt_details.cache_read")
    assert [answer[f"llm.token_count.{kind}"] for kind in tokens] == [100, 40, 140, 20]
    assert answer["llm.token_count.completion_details.reasoning"] == 10
    event = by_name["cache hit"]
    assert event["start_time"] == event["end_time"]  # a point in time: a zero-length span

    root_attributes = by_name["support agent"]["attributes"]
    assert root_attributes["user.id"] == "user-7"
    assert root_attributes["session.id"] == session
    assert root_attributes["tag.tags"] == ["prod", "support"]
    # the trace's metadata rides on the root span; Phoenix shows it flattened
    assert root_attributes["metadata.tenant"] == "acme"
    assert root_attributes["metadata.plan.tier"] == 2
    assert phoenix.session_traces(session) == [local.id]


def test_trace_attributes_that_come_after_the_root_was_sent(
    tmp_path: Path, phoenix: Phoenix
) -> None:
    """The root span is sent again with them; Phoenix keeps the first copy of a span, so of
    those it takes only the session (it groups traces before it stores the span)."""
    tracer = _forwarding_tracer(tmp_path / "data", phoenix, "late-attributes")
    session = f"late-{uuid.uuid4().hex[:8]}"
    with tracer.span("ask", input="q") as root:
        root.update(output="a")
    wait_for(lambda: phoenix.spans(tracer.project), what="the root span in Phoenix")
    root.update_trace(user_id="late-user", session_id=session, tags=["late"])
    local, (span,) = _stop_and_collect(tracer, phoenix, resent=(1,))

    assert (local.user_id, local.session_id, local.tags) == ("late-user", session, ["late"])
    wait_for(lambda: phoenix.session_traces(session), what="the late session in Phoenix")
    assert phoenix.session_traces(session) == [local.id]
    # If this fails, Phoenix now updates spans: drop the README's note on it.
    assert "user.id" not in span["attributes"] and "tag.tags" not in span["attributes"]
    assert (_value(span["attributes"], "input"), _value(span["attributes"], "output")) == (
        "q",
        "a",
    )

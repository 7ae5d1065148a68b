"""Forwarding into a second, live traceyard: its Langfuse OTLP endpoint and its plain OTLP
endpoint. What arrives must mean what was sent, in each target's conventions."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ingest_support import LiveServer, live_server, wait_for
from remote_support import clean_routing_env

from traceyard.capture.tracer import Tracer
from traceyard.config import load_settings
from traceyard.model import Level, ObservationType, TraceDetail
from traceyard.pipeline.routing import describe, sink_stats

START = 1_767_000_000_000_000_000  # fixed times, so they can be compared exactly


def _agent_run(tracer: Tracer) -> str:
    """One trace using every observation type and every field forwarding must keep."""
    t = START
    with tracer.span(
        "support agent", as_type="agent", input={"question": "refund?"}, start_time=t
    ) as root:
        tracer.update_trace(
            user_id="user-7",
            session_id="sess-3",
            tags=["prod", "support"],
            metadata={"tenant": "acme", "plan": {"tier": 2}},
            release="r42",
            version="v1.2",
            environment="staging",
        )
        with tracer.span(
            "lookup", as_type="retriever", input="refund policy", start_time=t + 1
        ) as r:
            r.update(output=[{"doc": "policy.md", "score": 0.9}], metadata={"k": 3})
        with tracer.generation(
            "answer",
            model="gpt-4o-mini",
            input=[{"role": "user", "content": "refund?"}],
            model_parameters={"temperature": 0.2, "max_tokens": 256, "stop": ["\n\n"]},
            start_time=t + 2,
            prompt_name="support-answer",
            prompt_version=3,
        ) as gen:
            gen.update(
                output={"role": "assistant", "content": "Yes, within 30 days."},
                usage={"input": 80, "cache_read": 20, "output": 30, "reasoning": 10, "total": 140},
                cost={"input": 0.0008, "cache_read": 0.0001, "output": 0.0012, "total": 0.0021},
                completion_start_time=time.time_ns() // 1000 * 1000,  # whole µs
            )
        for kind in ("tool", "chain", "embedding", "evaluator", "guardrail", "span"):
            with tracer.span(f"{kind} step", as_type=kind, input="42", start_time=t + 3):
                pass
        tracer.event("cache hit", input={"key": "refund"}, level=Level.WARNING)
        with tracer.span("flaky call", start_time=t + 4) as bad:
            bad.update(level=Level.ERROR, status_message="TimeoutError: upstream")
        tracer.score("helpfulness", 0.75, comment="good")
        root.update(output="Yes, within 30 days.")
    return root.trace_id


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[LiveServer]:
    with clean_routing_env(), live_server(tmp_path / "receiver", public_key="pk-lf-fwd") as live:
        yield live


def _forwarding_tracer(data_dir: Path, targets: list[dict[str, Any]], **overrides: Any) -> Tracer:
    with clean_routing_env():
        os.environ["TRACEYARD_FORWARD_TARGETS"] = json.dumps(targets)
        return Tracer.create(
            data_dir=data_dir, start_server=False, worker_batch_timeout=0.05, **overrides
        )


def _user_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metadata.items() if k != "otel"}


def _compare_common(sent: TraceDetail, got: TraceDetail) -> None:
    """What both conventions keep exactly."""
    assert (got.name, got.user_id, got.session_id) == (sent.name, sent.user_id, sent.session_id)
    assert sorted(got.tags) == sorted(sent.tags)
    assert got.input == sent.input and got.output == sent.output
    assert got.environment == sent.environment and got.version == sent.version
    mine = {o.id: o for o in sent.observations}
    theirs = {o.id: o for o in got.observations}
    assert set(theirs) == set(mine)  # our ids are OTel-shaped: they travel unchanged
    for obs_id, o in mine.items():
        g = theirs[obs_id]
        assert (g.name, g.parent_id) == (o.name, o.parent_id), o.name
        assert (g.start_time, g.end_time) == (o.start_time, o.end_time), o.name
        assert g.input == o.input and g.output == o.output, o.name
        assert g.model == o.model and g.usage == o.usage, o.name
        assert g.cost.get("total") == o.cost.get("total"), o.name
        if o.model_parameters:
            assert g.model_parameters == o.model_parameters, o.name
        assert (g.level is Level.ERROR) == (o.level is Level.ERROR), o.name
        if o.level is Level.ERROR:
            assert g.status_message == o.status_message
        if o.completion_start_time is None:
            assert g.completion_start_time is None, o.name
        else:  # via seconds as a float (GenAI) or ISO (Langfuse): the same to the µs
            assert g.completion_start_time is not None, o.name
            drift = abs((g.completion_start_time - o.completion_start_time).total_seconds())
            assert drift <= 1e-6, o.name


def test_forwarding_to_langfuse_keeps_the_meaning(tmp_path: Path, receiver: LiveServer) -> None:
    target = {
        "type": "langfuse",
        "host": receiver.url,
        "public_key": receiver.public_key,
        "secret_key": receiver.secret_key,
        "flush_interval_s": 0.05,
    }
    tracer = _forwarding_tracer(tmp_path / "source", [target])
    trace_id = _agent_run(tracer)
    assert tracer.flush(10) == 0
    assert tracer.store is not None
    sent = tracer.store.get_trace(trace_id)
    tracer.stop()  # drains the forwarders
    stats = sink_stats(tracer._sink)["forwarding"][f"langfuse {receiver.url}"]
    assert stats["failed"] == 0 and stats["dropped"] == 0, stats
    assert stats["sent"] == len(sent.observations) + 1  # + the score

    got = wait_for(lambda: receiver.store.get_trace(trace_id), what="the forwarded trace")
    wait_for(lambda: len(receiver.traces()[0].observations) == len(sent.observations))
    got = receiver.store.get_trace(trace_id)
    assert sent is not None and got is not None
    _compare_common(sent, got)
    assert got.project == receiver.project  # the key pair's project
    assert got.release == sent.release
    assert _user_metadata(got.metadata) == _user_metadata(sent.metadata)
    mine = {o.id: o for o in sent.observations}
    for g in got.observations:
        o = mine[g.id]
        assert g.type is o.type and g.level is o.level, o.name  # all ten types, all levels
        assert g.cost == o.cost, o.name
        assert _user_metadata(g.metadata) == _user_metadata(o.metadata), o.name
        assert (g.prompt_name, g.prompt_version) == (o.prompt_name, o.prompt_version)
    assert {o.type for o in got.observations} == set(ObservationType)
    (score,) = receiver.store.list_scores(trace_id=trace_id).data
    assert (score.name, score.value, score.comment) == ("helpfulness", 0.75, "good")


def test_forwarding_to_otlp_keeps_the_meaning(tmp_path: Path, receiver: LiveServer) -> None:
    target = {
        "type": "otlp",
        "endpoint": receiver.url + "/v1/traces",
        "headers": {"x-traceyard-project": "from-otlp"},
        "flush_interval_s": 0.05,
    }
    tracer = _forwarding_tracer(tmp_path / "source", [target])
    trace_id = _agent_run(tracer)
    assert tracer.flush(10) == 0
    assert tracer.store is not None
    sent = tracer.store.get_trace(trace_id)
    tracer.stop()
    stats = sink_stats(tracer._sink)["forwarding"][target["endpoint"].join(("otlp ", ""))]
    assert stats["failed"] == 0 and stats["skipped"] == 1  # OTLP has no scores
    assert stats["sent"] == len(sent.observations)

    wait_for(
        lambda: (
            (t := receiver.store.get_trace(trace_id))
            and len(t.observations) == len(sent.observations)
        ),
        what="the forwarded spans",
    )
    got = receiver.store.get_trace(trace_id)
    assert sent is not None and got is not None
    _compare_common(sent, got)
    assert got.project == "from-otlp"
    for key, value in sent.metadata.items():  # the trace's metadata rides on the root span
        assert got.metadata[key] == value
    mine = {o.id: o for o in sent.observations}
    for g in got.observations:
        o = mine[g.id]
        expected = ObservationType.SPAN if o.type is ObservationType.EVENT else o.type
        assert g.type is expected, o.name  # OTLP has no "event" kind
        for key, value in _user_metadata(o.metadata).items():
            assert g.metadata[key] == value, o.name


def test_a_target_that_is_down_blocks_nothing_and_counts_its_losses(
    tmp_path: Path, receiver: LiveServer
) -> None:
    down = {
        "type": "otlp",
        "endpoint": "http://127.0.0.1:9/v1/traces",
        "max_attempts": 2,
        "flush_interval_s": 0.05,
        "name": "down",
    }
    up = {
        "type": "otlp",
        "endpoint": receiver.url + "/v1/traces",
        "flush_interval_s": 0.05,
        "name": "up",
    }
    tracer = _forwarding_tracer(tmp_path / "source", [down, up])
    for i in range(20):
        with tracer.span(f"run {i}"):
            pass
    assert tracer.flush(10) == 0  # the local store is not held up by the dead target
    assert tracer.store is not None and tracer.store.counts().traces == 20
    wait_for(lambda: sink_stats(tracer._sink)["forwarding"]["up"]["sent"] == 20, what="up: 20")
    tracer.stop()
    stats = sink_stats(tracer._sink)["forwarding"]
    assert stats["down"]["sent"] == 0
    assert stats["down"]["failed"] + stats["down"]["dropped"] == 20
    assert "ConnectError" in stats["down"]["last_error"]


def test_forward_only_keeps_nothing_locally(tmp_path: Path, receiver: LiveServer) -> None:
    target = {"type": "otlp", "endpoint": receiver.url + "/v1/traces", "flush_interval_s": 0.05}
    tracer = _forwarding_tracer(
        tmp_path / "source",
        [target],
    )
    tracer.stop()
    with clean_routing_env():
        os.environ["TRACEYARD_FORWARD_TARGETS"] = json.dumps([target])
        assert describe(load_settings())["tracing_mode"] == "local+forward"
        os.environ["TRACEYARD_TRACING_MODE"] = "forward"
        assert describe(load_settings()) == {
            "tracing_mode": "forward",
            "storage": "none",
            "endpoint": None,
            "forwarding": [f"otlp {target['endpoint']}"],
        }
        only = Tracer.create(data_dir=tmp_path / "nothing", start_server=False)
    assert only.store is None
    with only.span("forwarded only") as span:
        pass
    only.stop()
    assert not (tmp_path / "nothing").exists()
    wait_for(lambda: receiver.store.get_trace(span.trace_id), what="the forwarded trace")

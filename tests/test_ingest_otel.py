"""OpenTelemetry clients, unchanged, against a live traceyard: the OTel SDK's OTLP/HTTP exporters
(protobuf in-process; JSON from the official JSON exporter in the cached client venv), an
OpenInference-instrumented LangGraph agent on a fake model, and LiteLLM's ``langfuse_otel``
callback with ``mock_response``.

The last two run in subprocesses of this venv: both install process-global OTel state.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from ingest_support import LiveServer, live_server, run_client, wait_for
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from traceyard.model import Level, ObservationType, TraceDetail


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("otel"), public_key="pk-lf-otel") as live:
        yield live


def _stored(server: LiveServer, trace_id: str, observations: int) -> TraceDetail:
    def ready() -> TraceDetail | None:
        server.flush()
        trace = server.store.get_trace(trace_id)
        return trace if trace is not None and trace.observation_count >= observations else None

    return wait_for(ready, what=f"trace {trace_id} with {observations} observations")


def test_otel_sdk_protobuf_gzip_with_genai_attributes(server: LiveServer) -> None:
    provider = TracerProvider(
        resource=Resource.create(
            {
                "service.name": "planner-svc",
                "service.version": "3.1.0",
                "deployment.environment.name": "Prod",
            }
        )
    )
    exporter = OTLPSpanExporter(endpoint=f"{server.url}/v1/traces", compression=Compression.Gzip)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("my.genai.app", "0.9")
    with tracer.start_as_current_span("invoke_agent planner") as root:
        root.set_attributes(
            {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": "planner",
                "gen_ai.conversation.id": "conv-1",
                "user.id": "otel-user",
            }
        )
        with tracer.start_as_current_span("chat gpt-4o") as chat:
            chat.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.response.model": "gpt-4o-2024-08-06",
                    "gen_ai.request.temperature": 0.3,
                    "gen_ai.request.max_tokens": 200,
                    # input_tokens includes the cached tokens (OTel semantics)
                    "gen_ai.usage.input_tokens": 100,
                    "gen_ai.usage.cache_read.input_tokens": 40,
                    "gen_ai.usage.output_tokens": 20,
                    "gen_ai.usage.reasoning.output_tokens": 5,
                    "gen_ai.system_instructions": json.dumps(
                        [{"type": "text", "content": "be brief"}]
                    ),
                    "gen_ai.input.messages": json.dumps(
                        [{"role": "user", "parts": [{"type": "text", "content": "plan"}]}]
                    ),
                    "gen_ai.output.messages": json.dumps(
                        [
                            {
                                "role": "assistant",
                                "parts": [{"type": "text", "content": "done"}],
                                "finish_reason": "stop",
                            }
                        ]
                    ),
                    "app.custom": 7,
                }
            )
        with tracer.start_as_current_span("chat claude") as legacy:
            legacy.set_attributes(
                {
                    "gen_ai.system": "anthropic",
                    "gen_ai.request.model": "claude-3-5-sonnet-20241022",
                    "gen_ai.usage.prompt_tokens": 50,
                    "gen_ai.usage.completion_tokens": 10,
                    "gen_ai.usage.cost": 0.123,
                    "gen_ai.prompt.0.role": "user",
                    "gen_ai.prompt.0.content": "hi",
                    "gen_ai.completion.0.role": "assistant",
                    "gen_ai.completion.0.content": "hello",
                }
            )
        with tracer.start_as_current_span("execute_tool search") as tool:
            tool.set_attributes(
                {
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": "search",
                    "gen_ai.tool.call.arguments": json.dumps({"q": "paris"}),
                    "gen_ai.tool.call.result": json.dumps(["r1"]),
                }
            )
            tool.record_exception(ValueError("search backend down"))
            tool.set_status(Status(StatusCode.ERROR, "ValueError: search backend down"))
        trace_id = format(root.get_span_context().trace_id, "032x")
        root_id = format(root.get_span_context().span_id, "016x")
    provider.shutdown()

    trace = _stored(server, trace_id, 4)
    assert trace.project == "default"  # /v1/traces writes to the server's own project
    assert trace.name == "invoke_agent planner"
    assert (trace.user_id, trace.session_id) == ("otel-user", "conv-1")
    assert trace.environment == "prod" and trace.version == "3.1.0"
    assert trace.metadata == {}  # nothing of OTel's leaks into user metadata
    by_name = {o.name: o for o in trace.observations}
    root_obs = by_name["invoke_agent planner"]
    assert root_obs.id == root_id and root_obs.type is ObservationType.AGENT
    assert root_obs.metadata["otel"]["resource"]["service.name"] == "planner-svc"
    assert root_obs.metadata["otel"]["scope"] == {"name": "my.genai.app", "version": "0.9"}

    chat_obs = by_name["chat gpt-4o"]
    assert chat_obs.parent_id == root_id
    assert chat_obs.type is ObservationType.GENERATION
    assert chat_obs.model == "gpt-4o-2024-08-06"
    assert chat_obs.model_parameters == {"temperature": 0.3, "max_tokens": 200}
    # cached and reasoning tokens are split out of input/output, neither dropped nor doubled
    assert chat_obs.usage == {
        "input": 60,
        "cache_read": 40,
        "output": 15,
        "reasoning": 5,
        "total": 120,
    }
    assert chat_obs.cost["total"] == pytest.approx(60 * 2.5e-6 + 40 * 1.25e-6 + 20 * 1e-5)
    assert chat_obs.input[0] == {
        "role": "system",
        "parts": [{"type": "text", "content": "be brief"}],
    }
    assert chat_obs.input[1]["parts"][0]["content"] == "plan"
    assert chat_obs.output[0]["finish_reason"] == "stop"
    assert chat_obs.metadata["otel"]["attributes"]["app.custom"] == 7
    assert chat_obs.metadata["otel"]["attributes"]["gen_ai.provider.name"] == "openai"

    legacy_obs = by_name["chat claude"]
    assert legacy_obs.type is ObservationType.GENERATION
    assert legacy_obs.model == "claude-3-5-sonnet-20241022"
    assert legacy_obs.usage == {"input": 50, "output": 10, "total": 60}
    assert legacy_obs.cost == {"total": 0.123}  # the client's cost wins over the price table
    assert legacy_obs.input == [{"role": "user", "content": "hi"}]
    assert legacy_obs.output == [{"role": "assistant", "content": "hello"}]

    tool_obs = by_name["execute_tool search"]
    assert tool_obs.type is ObservationType.TOOL
    assert tool_obs.level is Level.ERROR
    assert tool_obs.status_message == "ValueError: search backend down"
    assert tool_obs.input == {"q": "paris"} and tool_obs.output == ["r1"]
    (exception,) = tool_obs.metadata["otel"]["events"]
    assert exception["name"] == "exception"
    assert exception["attributes"]["exception.message"] == "search backend down"
    assert trace.error_count == 1


JSON_CLIENT = r"""
import os
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.otlp.common.http import Compression

provider = TracerProvider(resource=Resource.create({"service.name": "json-svc"}))
exporter = OTLPSpanExporter(
    endpoint=os.environ["ENDPOINT"], compression=Compression.GZIP,
    headers={"Authorization": "Basic " + os.environ["BASIC"]},
)
provider.add_span_processor(SimpleSpanProcessor(exporter))
tracer = provider.get_tracer("json.app")
with tracer.start_as_current_span("workflow") as root:
    root.set_attribute("session.id", "json-session")
    root.set_attribute("langfuse.trace.tags", ["json", "otlp"])
    root.set_attribute("langfuse.trace.metadata.customer", "acme")
    with tracer.start_as_current_span("generate") as gen:
        gen.set_attribute("langfuse.observation.type", "generation")
        gen.set_attribute("langfuse.observation.model.name", "gpt-4o-mini")
        gen.set_attribute("langfuse.observation.usage_details", '{"input": 12, "output": 7}')
        gen.set_attribute("langfuse.observation.input", '[{"role": "user", "content": "q"}]')
        gen.set_attribute("langfuse.observation.output", "an answer")
        gen.set_attribute("langfuse.observation.level", "WARNING")
        gen.set_attribute("langfuse.observation.prompt.name", "greet")
        gen.set_attribute("langfuse.observation.prompt.version", 3)
        gen.set_attribute("gen_ai.request.model", "ignored-because-langfuse-wins")
        gen.set_attribute("app.region", "eu")
print(format(root.get_span_context().trace_id, "032x"))
provider.shutdown()
"""


def test_otel_sdk_json_exporter_with_langfuse_attributes(server: LiveServer) -> None:
    import base64

    basic = base64.b64encode(f"{server.public_key}:{server.secret_key}".encode()).decode()
    out = run_client(
        JSON_CLIENT,
        {"ENDPOINT": f"{server.url}/api/public/otel/v1/traces", "BASIC": basic},
    )
    trace_id = out.strip().splitlines()[-1]
    trace = _stored(server, trace_id, 2)
    assert trace.project == server.project  # the key pair's project
    assert trace.name == "workflow" and trace.session_id == "json-session"
    assert trace.tags == ["json", "otlp"]
    assert trace.metadata == {"customer": "acme"}
    generation = next(o for o in trace.observations if o.name == "generate")
    assert generation.type is ObservationType.GENERATION
    assert generation.model == "gpt-4o-mini"  # langfuse.* beats gen_ai.*
    assert generation.usage == {"input": 12, "output": 7, "total": 19}
    assert generation.cost["total"] == pytest.approx(6.0e-6)
    assert generation.input == [{"role": "user", "content": "q"}]
    assert generation.output == "an answer"
    assert generation.level is Level.WARNING
    assert (generation.prompt_name, generation.prompt_version) == ("greet", 3)
    # the losing gen_ai model was read (not left over); an unknown attribute is kept apart
    assert generation.metadata["otel"]["attributes"] == {"app.region": "eu"}


LANGGRAPH_CLIENT = r"""
import os, json
from typing import TypedDict
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from openinference.instrumentation.langchain import LangChainInstrumentor
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.graph import StateGraph, END

provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=os.environ["ENDPOINT"])))
LangChainInstrumentor().instrument(tracer_provider=provider)

model = FakeMessagesListChatModel(responses=[AIMessage(
    content="use the tool",
    usage_metadata={"input_tokens": 30, "output_tokens": 8, "total_tokens": 38},
    response_metadata={"model_name": "gpt-4o-mini"},
)])

@tool
def lookup(city: str) -> str:
    "Find the population of a city."
    return f"{city}: 2.1M"

class State(TypedDict):
    question: str
    plan: str
    answer: str

def plan(state):
    reply = model.invoke([HumanMessage(content=state["question"])])
    return {"plan": reply.content}

def act(state):
    return {"answer": lookup.invoke({"city": "Paris"})}

graph = StateGraph(State)
graph.add_node("plan", plan)
graph.add_node("act", act)
graph.set_entry_point("plan")
graph.add_edge("plan", "act")
graph.add_edge("act", END)
app = graph.compile()
result = app.invoke(
    {"question": "How many people live in Paris?"},
    config={"metadata": {"session_id": "graph-session", "user_id": "graph-user"}},
)
assert result["answer"] == "Paris: 2.1M"
provider.shutdown()
"""


def test_openinference_langgraph_agent(
    server: LiveServer, slow_clients: dict[str, subprocess.Popen[str]]
) -> None:
    _finish(slow_clients["langgraph"])
    trace = wait_for(
        lambda: next(
            (t for t in server.traces(session_id="graph-session") if t.observation_count >= 4),
            None,
        ),
        what="the LangGraph trace",
    )
    assert trace.name == "LangGraph" and trace.project == "default"
    # OpenInference sets session.id from the run's metadata; the rest stays metadata
    assert trace.metadata["user_id"] == "graph-user"
    by_name = {o.name: o for o in trace.observations}
    root = by_name["LangGraph"]
    assert root.type is ObservationType.CHAIN and root.parent_id is None
    assert by_name["plan"].parent_id == root.id and by_name["act"].parent_id == root.id
    llm = next(o for o in trace.observations if o.type is ObservationType.GENERATION)
    assert llm.parent_id == by_name["plan"].id
    assert llm.usage == {"input": 30, "output": 8, "total": 38}
    assert llm.input[0]["role"] == "user"
    assert llm.input[0]["content"] == "How many people live in Paris?"
    assert llm.output[0]["content"] == "use the tool"
    tool_obs = by_name["lookup"]
    assert tool_obs.type is ObservationType.TOOL and tool_obs.output == "Paris: 2.1M"
    assert trace.input == "How many people live in Paris?"  # the root's input.value
    assert trace.output["answer"] == "Paris: 2.1M"
    # LangChain's run metadata (OpenInference "metadata") is the observation's user metadata
    assert by_name["plan"].metadata["langgraph_node"] == "plan"


LITELLM_CLIENT = r"""
import os, litellm
litellm.callbacks = ["langfuse_otel"]
response = litellm.completion(
    model="gpt-4o-mini",
    messages=[{"role": "user", "content": "What is 2+2?"}],
    mock_response="4",
    metadata={
        "trace_user_id": "litellm-user", "session_id": "litellm-session",
        "tags": ["litellm"], "trace_name": "litellm-run",
    },
)
assert response.choices[0].message.content == "4"
print(response.id)
import opentelemetry.trace as trace_api
provider = trace_api.get_tracer_provider()
if hasattr(provider, "force_flush"):
    provider.force_flush()
"""


def test_litellm_langfuse_otel_callback(
    server: LiveServer, slow_clients: dict[str, subprocess.Popen[str]]
) -> None:
    _finish(slow_clients["litellm"])
    trace = wait_for(
        lambda: next(iter(server.traces(session_id="litellm-session")), None),
        what="the LiteLLM trace",
    )
    assert trace.user_id == "litellm-user"
    assert "litellm" in trace.tags
    generation = next(o for o in trace.observations if o.type is ObservationType.GENERATION)
    assert generation.model is not None and "gpt-4o-mini" in generation.model
    assert generation.usage["total"] > 0
    assert generation.usage["input"] + generation.usage["output"] == generation.usage["total"]
    assert generation.output is not None and "4" in json.dumps(generation.output)
    assert generation.cost.get("total", 0) > 0


@pytest.fixture(scope="module")
def slow_clients(server: LiveServer) -> Iterator[dict[str, subprocess.Popen[str]]]:
    """LangGraph+OpenInference and LiteLLM take seconds just to import: start both at once,
    in fresh interpreters of this venv (each installs process-global OTel state)."""
    clients = {
        "langgraph": _start(LANGGRAPH_CLIENT, {"ENDPOINT": f"{server.url}/v1/traces"}),
        "litellm": _start(
            LITELLM_CLIENT,
            {
                "LANGFUSE_PUBLIC_KEY": server.public_key,
                "LANGFUSE_SECRET_KEY": server.secret_key,
                "LANGFUSE_OTEL_HOST": server.url,
                "OTEL_BSP_SCHEDULE_DELAY": "50",
                # no network here: use the price map LiteLLM ships instead of fetching one
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            },
        ),
    }
    yield clients
    for process in clients.values():
        if process.poll() is None:
            process.kill()
            process.wait()


def _start(script: str, env: dict[str, str]) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TRACEYARD_", "LANGFUSE_"))}
    clean.update(env)
    return subprocess.Popen(
        [sys.executable, "-c", script],
        env=clean,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen[str]) -> str:
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, f"client failed:\n{stdout}\n{stderr}"
    return stdout

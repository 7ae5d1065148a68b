"""The pure translators: key pairs, body limits, times, OTel attribute precedence, Langfuse
batches. Fast and exhaustive where the live-client tests are realistic but coarse."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import pytest

from traceyard.errors import ConfigError
from traceyard.ingest._values import parse_time_ns
from traceyard.ingest.keys import KeyRing, parse_key_pairs
from traceyard.ingest.langfuse import EnvelopeLog, translate_batch
from traceyard.ingest.limits import BadEncodingError, BodyTooLargeError, decode_content
from traceyard.ingest.otel_mapping import OtelSpan, SpanEvent, make_scope, map_span
from traceyard.ingest.otlp import translate
from traceyard.model import Entity, Level, ObservationType, ScoreDataType

TRACE = "0af7651916cd43dd8448eb211c80319c"
CALL = "llm.output_messages.0.message.tool_calls.0.tool_call"


def span(
    attributes: dict[str, Any],
    *,
    name: str = "span",
    span_id: str = "b7ad6b7169203331",
    parent: str | None = "00f067aa0ba902b7",
    scope: tuple[str, str] = ("app", ""),
    resource: dict[str, Any] | None = None,
    events: list[SpanEvent] | None = None,
    status: int = 0,
) -> OtelSpan:
    return OtelSpan(
        TRACE,
        span_id,
        parent,
        name,
        1,
        1_000,
        2_000,
        attributes,
        events or [],
        status,
        "",
        resource or {},
        make_scope(scope[0], scope[1], {}),
    )


# ------------------------------------------------------------------------------ keys


def test_key_pairs_parse_and_authenticate() -> None:
    pairs = parse_key_pairs(" pk-a:sk-a@proj1 , pk-b:sk-b ", default_project="main")
    assert [(p.public_key, p.project) for p in pairs] == [("pk-a", "proj1"), ("pk-b", "main")]
    ring = KeyRing(pairs)
    basic = "Basic " + __import__("base64").b64encode(b"pk-a:sk-a").decode()
    assert ring.authenticate(basic) == pairs[0]
    wrong = "Basic " + __import__("base64").b64encode(b"pk-a:sk-b").decode()
    assert ring.authenticate(wrong) is None
    assert ring.authenticate("Bearer pk-a:sk-a") is None
    assert ring.authenticate("Basic !!!") is None


def test_malformed_key_pair_names_the_entry_without_its_secret() -> None:
    with pytest.raises(ConfigError, match="TRACEYARD_LANGFUSE_KEYS") as caught:
        parse_key_pairs("pk-ok:sk-ok,pk-missing-secret:@p", default_project="d")
    assert "pk-missing-secret" in str(caught.value)
    with pytest.raises(ConfigError) as no_colon:
        parse_key_pairs("justonekey-secretvalue", default_project="d")
    assert "secretvalue" in str(no_colon.value)  # no ':' means nothing was taken for a secret
    with pytest.raises(ConfigError) as hidden:
        parse_key_pairs(":sk-topsecret@p", default_project="d")
    assert "topsecret" not in str(hidden.value)


# ------------------------------------------------------------------------------ limits


def test_gzip_bomb_stops_at_the_cap() -> None:
    bomb = gzip.compress(b"\0" * (10 << 20))
    with pytest.raises(BodyTooLargeError) as caught:
        decode_content(bomb, "gzip", limit=1_000_000)
    assert caught.value.decompressed and "1000000 bytes" in str(caught.value)


def test_decoding_up_to_the_cap_and_stacked_encodings() -> None:
    payload = b"x" * 1000
    assert decode_content(gzip.compress(payload), "gzip", limit=1000) == payload
    with pytest.raises(BodyTooLargeError):
        decode_content(gzip.compress(payload), "gzip", limit=999)
    twice = gzip.compress(zlib.compress(payload))
    assert decode_content(twice, "deflate, gzip", limit=1000) == payload
    assert decode_content(payload, "identity", limit=1000) == payload
    with pytest.raises(BadEncodingError, match="unsupported"):
        decode_content(payload, "zstd", limit=1000)
    with pytest.raises(BadEncodingError, match="corrupt gzip"):
        decode_content(b"not gzip at all", "gzip", limit=1000)


# ------------------------------------------------------------------------------ times


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-22T10:00:00Z", 1_795_341_600_000_000_000),
        ("2026-11-22T10:00:00.123456789Z", 1_795_341_600_123_456_789),
        ("2026-11-22T12:00:00.5+02:00", 1_795_341_600_500_000_000),
        ("2026-11-22T10:00:00", 1_795_341_600_000_000_000),  # naive means UTC
        ('"2026-11-22T10:00:00.000Z"', 1_795_341_600_000_000_000),  # double-encoded
        (1_795_341_600, 1_795_341_600_000_000_000),  # seconds
        (1_795_341_600_000, 1_795_341_600_000_000_000),  # milliseconds
        ("yesterday", None),
    ],
)
def test_parse_time_ns(text: Any, expected: int | None) -> None:
    assert parse_time_ns(text) == expected


# ------------------------------------------------------------------------------ OTel mapping


def test_langfuse_keys_beat_gen_ai_which_beat_openinference() -> None:
    mapped = map_span(
        span(
            {
                "langfuse.observation.model.name": "lf-model",
                "gen_ai.request.model": "genai-model",
                "llm.model_name": "oi-model",
                "gen_ai.input.messages": json.dumps([{"role": "user", "content": "genai"}]),
                "input.value": "oi input",
                "gen_ai.usage.input_tokens": 10,
                "llm.token_count.prompt": 99,
            }
        )
    )
    obs = mapped.observation
    assert obs["model"] == "lf-model"
    assert obs["input"] == [{"role": "user", "content": "genai"}]
    assert obs["usage"] == {"input": 10, "total": 10}
    assert obs["type"] is ObservationType.GENERATION  # a model and no declared type
    # every alternative was read (and lost to a higher precedence): nothing left over
    assert "attributes" not in obs["metadata"]["otel"]


def test_openinference_flattened_messages_tools_and_cache_tokens() -> None:
    mapped = map_span(
        span(
            {
                "openinference.span.kind": "LLM",
                "llm.model_name": "claude-3-5-sonnet-20241022",
                "llm.input_messages.0.message.role": "system",
                "llm.input_messages.0.message.content": "be brief",
                "llm.input_messages.1.message.role": "user",
                "llm.input_messages.1.message.content": "weather?",
                "llm.output_messages.0.message.role": "assistant",
                f"{CALL}.function.name": "get",
                f"{CALL}.function.arguments": '{"c": 1}',
                "llm.token_count.prompt": 100,
                "llm.token_count.prompt_details.cache_read": 30,
                "llm.token_count.prompt_details.cache_write": 20,
                "llm.token_count.completion": 10,
                "llm.token_count.total": 110,
                "llm.cost.total": 0.5,
                "llm.invocation_parameters": '{"temperature": 0}',
                "session.id": "s",
                "tag.tags": ["x", "y"],
            }
        )
    )
    obs = mapped.observation
    assert obs["type"] is ObservationType.GENERATION
    assert obs["input"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "weather?"},
    ]
    assert obs["output"] == [
        {"role": "assistant", "tool_calls": [{"function": {"name": "get", "arguments": {"c": 1}}}]}
    ]
    # the prompt count includes the cache (the total says so): split, not doubled
    assert obs["usage"] == {
        "input": 50,
        "cache_read": 30,
        "cache_write": 20,
        "output": 10,
        "total": 110,
    }
    assert obs["cost"] == {"total": 0.5}
    assert obs["model_parameters"] == {"temperature": 0}
    assert mapped.trace["session_id"] == "s" and mapped.trace["tags"] == ["x", "y"]
    assert mapped.has_trace_updates


def test_v5_metadata_values_are_json_decoded_only_for_v5() -> None:
    attributes = {
        "langfuse.observation.metadata.tool": '"search"',
        "langfuse.observation.metadata.n": "3",
        "langfuse.trace.metadata.flag": "true",
    }
    v5 = map_span(span(dict(attributes), scope=("langfuse-sdk", "5.0.4")))
    assert v5.observation["metadata"]["tool"] == "search"
    assert v5.observation["metadata"]["n"] == 3
    assert v5.trace["metadata"] == {"flag": True}
    v4 = map_span(span(dict(attributes), scope=("langfuse-sdk", "4.18.0")))
    assert v4.observation["metadata"]["tool"] == '"search"'  # v4 sent the raw string
    assert v4.observation["metadata"]["n"] == "3"


def test_compat_keys_and_litellm_shapes() -> None:
    mapped = map_span(
        span(
            {
                "langfuse.observation.metadata.langfuse_user_id": '"u1"',
                "langfuse.observation.metadata.langfuse_session_id": '"s1"',
                "langfuse.trace.tags": '["a", "b"]',
                "langfuse.trace.metadata": '{"team": "x"}',
                "langfuse.observation.completion_start_time": '"2026-11-22T10:00:00.000Z"',
            },
            scope=("langfuse-sdk", "5.0.4"),
        )
    )
    assert mapped.trace["user_id"] == "u1" and mapped.trace["session_id"] == "s1"
    assert mapped.trace["tags"] == ["a", "b"]
    assert mapped.trace["metadata"] == {"team": "x"}
    assert "langfuse_user_id" not in mapped.observation["metadata"]
    assert mapped.observation["completion_start_time"] == 1_795_341_600_000_000_000


def test_status_exception_and_environment() -> None:
    exception = SpanEvent(
        "exception", 1_500, {"exception.type": "KeyError", "exception.message": "'k'"}
    )
    mapped = map_span(
        span(
            {},
            events=[exception],
            status=2,
            resource={"deployment.environment": "Staging EU!", "service.version": "9"},
        )
    )
    assert mapped.observation["level"] is Level.ERROR
    assert mapped.observation["status_message"] == "KeyError: 'k'"
    assert mapped.trace == {"environment": "stagingeu", "version": "9"}
    assert not mapped.has_trace_updates  # context only: no trace update of its own
    declared = map_span(span({"langfuse.observation.level": "WARN"}, status=2))
    assert declared.observation["level"] is Level.WARNING  # the declared level wins


def test_as_root_and_trace_assembly() -> None:
    child = span(
        {"langfuse.trace.name": "explicit name", "user.id": "u"},
        name="child",
        span_id="1111111111111111",
        parent="2222222222222222",
    )
    root = span(
        {"langfuse.internal.as_root": True, "langfuse.observation.input": '{"q": 1}'},
        name="root span",
        span_id="2222222222222222",
        parent="9999999999999999",  # a remote, made-up parent
    )
    events = translate([child, root], "p")
    (trace,) = [e for e in events if e.entity is Entity.TRACE]
    # the root implies name/input; the child's explicit trace name wins even though the root
    # came later in the request
    assert trace.fields == {"name": "explicit name", "user_id": "u", "input": {"q": 1}}
    observations = {e.id: e.fields for e in events if e.entity is Entity.OBSERVATION}
    assert "parent_id" not in observations["2222222222222222"]  # as_root: shown as the root
    assert observations["1111111111111111"]["parent_id"] == "2222222222222222"


def test_legacy_gen_ai_prompt_and_events() -> None:
    mapped = map_span(
        span(
            {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-mini"},
            events=[
                SpanEvent("gen_ai.user.message", 1, {"content": "hi"}),
                SpanEvent("gen_ai.choice", 2, {"message": '{"content": "hello"}', "index": 0}),
            ],
        )
    )
    assert mapped.observation["input"] == [{"content": "hi", "role": "user"}]
    assert mapped.observation["output"] == [{"message": {"content": "hello"}, "index": 0}]
    assert "events" not in mapped.observation["metadata"]["otel"]


# ------------------------------------------------------------------------------ Langfuse batches


def _batch(*events: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "batch": [
            {"id": f"e{i}", "type": kind, "timestamp": "2026-11-22T10:00:00Z", "body": body}
            for i, (kind, body) in enumerate(events)
        ]
    }


def test_updates_apply_after_creates_and_legacy_usage_costs() -> None:
    result = translate_batch(
        _batch(
            ("generation-update", {"id": "g", "traceId": "t", "output": "done"}),
            (
                "generation-create",
                {
                    "id": "g",
                    "traceId": "t",
                    "model": "gpt-4o-mini",
                    "usage": {"input": 10, "output": 5, "unit": "TOKENS", "totalCost": 0.01},
                    "startTime": "2026-11-22T10:00:00Z",
                },
            ),
            ("observation-create", {"id": "o", "traceId": "t", "type": "EVENT", "startTime": 5}),
            ("sdk-log", {"log": {"x": 1}}),
        ),
        "p",
        EnvelopeLog(),
    )
    assert result.errors == []
    # creates first (Langfuse's order), then the update that arrived before its create
    assert [(e.id, e.fields.get("output")) for e in result.events] == [
        ("g", None),
        ("o", None),
        ("g", "done"),
    ]
    create = result.events[0].fields
    assert create["usage"] == {"input": 10, "output": 5, "total": 15}
    assert create["cost"] == {"total": 0.01}
    event = result.events[1].fields
    assert event["type"] is ObservationType.EVENT and event["end_time"] == event["start_time"]
    assert "e3" in result.acknowledged  # sdk-log: accepted, nothing stored


def test_score_bodies() -> None:
    result = translate_batch(
        _batch(
            ("score-create", {"traceId": "t", "name": "b", "value": 1, "dataType": "BOOLEAN"}),
            ("score-create", {"traceId": "t", "name": "c", "value": 2, "dataType": "CATEGORICAL"}),
            ("score-create", {"traceId": "t", "name": "bad", "value": 3, "dataType": "BOOLEAN"}),
            ("score-create", {"traceId": "t", "name": "txt", "value": "long", "dataType": "TEXT"}),
        ),
        "p",
        EnvelopeLog(),
    )
    assert [e["id"] for e in result.errors] == ["e2"]
    fields = [e.fields for e in result.events]
    assert fields[0]["data_type"] is ScoreDataType.BOOLEAN and fields[0]["string_value"] == "true"
    assert fields[1]["data_type"] is ScoreDataType.CATEGORICAL and fields[1]["string_value"] == "2"
    assert (
        fields[2]["data_type"] is ScoreDataType.CATEGORICAL and fields[2]["string_value"] == "long"
    )


def test_envelope_log_is_bounded() -> None:
    log = EnvelopeLog(capacity=3)
    log.remember("p", ["a", "b", "c", "d"])
    assert not log.seen("p", "a") and log.seen("p", "d")
    assert not log.seen("other", "d")  # per project


def test_key_ring_from_settings_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from traceyard.config import load_settings
    from traceyard.ingest.keys import load_key_ring

    monkeypatch.setenv("TRACEYARD_LANGFUSE_KEYS", "pk-env:sk-env")
    from_env = load_key_ring(load_settings(project="main"))
    assert from_env.projects() == ["main"] and not from_env.problem
    from_argument = load_key_ring(load_settings(project="main", langfuse_keys="pk-s:sk-s@p9"))
    assert from_argument.projects() == ["p9"]  # an argument wins over the environment
    broken = load_key_ring(load_settings(project="main", langfuse_keys="no-colon"))
    assert not broken and broken.problem is not None and "no-colon" in broken.problem

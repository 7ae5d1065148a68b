"""Usage normalisation and cost computation (traceyard.cost)."""

from __future__ import annotations

import json
import threading
from importlib import resources
from typing import Any

import pytest
from pydantic import ValidationError

import traceyard.cost as cost_module
from traceyard.cost import PriceEntry, PriceTable, compute_cost, normalize_usage

TOKEN_BUCKETS = {
    "input",
    "cache_read",
    "cache_write",
    "input_audio",
    "output",
    "reasoning",
    "output_audio",
}


def bucket_sum(usage: dict[str, int | float]) -> int | float:
    return sum(value for key, value in usage.items() if key in TOKEN_BUCKETS)


# --------------------------------------------------------------------------
# normalize_usage: every shape clients send
# --------------------------------------------------------------------------

SHAPES: dict[str, tuple[dict[str, Any], dict[str, int | float]]] = {
    # prompt_tokens includes cached + audio; completion includes reasoning + audio.
    # input = 100 - 40 cached - 5 audio = 55; output = 50 - 20 reasoning - 3 audio = 27
    "openai_chat": (
        {
            "prompt_tokens": 100,
            "completion_tokens": 50,
            "total_tokens": 150,
            "prompt_tokens_details": {"cached_tokens": 40, "audio_tokens": 5},
            "completion_tokens_details": {
                "reasoning_tokens": 20,
                "audio_tokens": 3,
                "accepted_prediction_tokens": 2,
                "rejected_prediction_tokens": 1,
            },
        },
        {
            "input": 55,
            "cache_read": 40,
            "input_audio": 5,
            "output": 27,
            "reasoning": 20,
            "output_audio": 3,
            "total": 150,
        },
    ),
    # input = 100 - 40 = 60; output = 50 - 20 = 30
    "openai_responses": (
        {
            "input_tokens": 100,
            "output_tokens": 50,
            "total_tokens": 150,
            "input_tokens_details": {"cached_tokens": 40},
            "output_tokens_details": {"reasoning_tokens": 20},
        },
        {"input": 60, "cache_read": 40, "output": 30, "reasoning": 20, "total": 150},
    ),
    # input = 100 - 30 read - 10 creation - 5 audio = 55; output = 50 - 20 = 30
    "langchain_usage_metadata": (
        {
            "input_tokens": 100,
            "output_tokens": 50,
            "total_tokens": 150,
            "input_token_details": {"cache_read": 30, "cache_creation": 10, "audio": 5},
            "output_token_details": {"reasoning": 20, "audio": 0},
        },
        {
            "input": 55,
            "cache_read": 30,
            "cache_write": 10,
            "input_audio": 5,
            "output": 30,
            "reasoning": 20,
            "total": 150,
        },
    ),
    # Anthropic's input_tokens excludes the cache: nothing subtracted,
    # total = 10 + 100 + 50 + 20 = 180 (web searches are not tokens)
    "anthropic_raw": (
        {
            "input_tokens": 10,
            "output_tokens": 20,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 50,
            "cache_creation": {"ephemeral_5m_input_tokens": 50, "ephemeral_1h_input_tokens": 0},
            "server_tool_use": {"web_search_requests": 2},
            "service_tier": "standard",
        },
        {
            "input": 10,
            "cache_read": 100,
            "cache_write": 50,
            "output": 20,
            "web_search_requests": 2,
            "total": 180,
        },
    ),
    # LiteLLM: input + output == total, so the cache figure is inside input:
    # input = 100 - 40 = 60
    "litellm_inclusive": (
        {"input": 100, "output": 50, "total": 150, "cache_read_input_tokens": 40},
        {"input": 60, "cache_read": 40, "output": 50, "total": 150},
    ),
    # Langfuse: 60 + 40 + 30 + 20 == 150, so the details sit beside input/output
    "langfuse_exclusive_with_total": (
        {
            "input": 60,
            "output": 30,
            "total": 150,
            "input_cached_tokens": 40,
            "output_reasoning_tokens": 20,
        },
        {"input": 60, "cache_read": 40, "output": 30, "reasoning": 20, "total": 150},
    ),
    # no total: Langfuse-style input already excludes cache; total = 60+40+5+30 = 135
    "langfuse_exclusive_without_total": (
        {"input": 60, "output": 30, "input_cache_read": 40, "input_cache_creation": 5},
        {"input": 60, "cache_read": 40, "cache_write": 5, "output": 30, "total": 135},
    ),
    # cost and unit keys are ignored
    "langfuse_legacy": (
        {
            "input": 10,
            "output": 5,
            "total": 15,
            "unit": "TOKENS",
            "inputCost": 0.1,
            "outputCost": 0.2,
            "totalCost": 0.3,
        },
        {"input": 10, "output": 5, "total": 15},
    ),
    "langfuse_camel_case": (
        {"promptTokens": 10, "completionTokens": 5, "totalTokens": 15},
        {"input": 10, "output": 5, "total": 15},
    ),
    # OTel GenAI is inclusive; deprecated prompt/completion_tokens duplicates are
    # not counted twice. input = 100 - 30 - 10 = 60; output = 50 - 20 = 30
    "otel_genai": (
        {
            "input_tokens": 100,
            "output_tokens": 50,
            "cache_read.input_tokens": 30,
            "cache_creation.input_tokens": 10,
            "reasoning.output_tokens": 20,
            "prompt_tokens": 100,
            "completion_tokens": 50,
        },
        {
            "input": 60,
            "cache_read": 30,
            "cache_write": 10,
            "output": 30,
            "reasoning": 20,
            "total": 150,
        },
    ),
    # OTel spelling of cache creation; attribute prefix left on by the caller
    "otel_genai_prefixed": (
        {
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 50,
            "gen_ai.usage.cache_write.input_tokens": 25,
        },
        {"input": 75, "cache_write": 25, "output": 50, "total": 150},
    ),
    # input = 100 - 30 - 10 - 5 = 55; output = 50 - 20 - 3 = 27
    "openinference": (
        {
            "prompt": 100,
            "completion": 50,
            "total": 150,
            "prompt_details.cache_read": 30,
            "prompt_details.cache_write": 10,
            "prompt_details.audio": 5,
            "completion_details.reasoning": 20,
            "completion_details.audio": 3,
        },
        {
            "input": 55,
            "cache_read": 30,
            "cache_write": 10,
            "input_audio": 5,
            "output": 27,
            "reasoning": 20,
            "output_audio": 3,
            "total": 150,
        },
    ),
    "openinference_prefixed": (
        {"llm.token_count.prompt": 9, "llm.token_count.completion": 4, "llm.token_count.total": 13},
        {"input": 9, "output": 4, "total": 13},
    ),
    # Gemini: cached is inside promptTokenCount, thoughts are beside candidates:
    # input = 100 - 40 = 60; 60 + 40 + 50 + 20 == 170
    "gemini": (
        {
            "promptTokenCount": 100,
            "candidatesTokenCount": 50,
            "totalTokenCount": 170,
            "cachedContentTokenCount": 40,
            "thoughtsTokenCount": 20,
            "trafficType": "ON_DEMAND",
        },
        {"input": 60, "cache_read": 40, "output": 50, "reasoning": 20, "total": 170},
    ),
    # Gemini Python SDK spelling with a modality breakdown: audio is split off
    # the prompt (input = 100 - 10 = 90)
    "gemini_snake_case_modalities": (
        {
            "prompt_token_count": 100,
            "candidates_token_count": 8,
            "total_token_count": 108,
            "prompt_tokens_details": [
                {"modality": "TEXT", "token_count": 90},
                {"modality": "AUDIO", "token_count": 10},
            ],
        },
        {"input": 90, "input_audio": 10, "output": 8, "total": 108},
    ),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_each_usage_shape_normalises_to_disjoint_buckets(shape: str) -> None:
    raw, expected = SHAPES[shape]
    assert normalize_usage(raw) == expected


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_buckets_add_up_to_a_consistent_total(shape: str) -> None:
    usage = normalize_usage(SHAPES[shape][0])
    assert bucket_sum(usage) == usage["total"]


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_normalising_twice_changes_nothing(shape: str) -> None:
    once = normalize_usage(SHAPES[shape][0])
    assert normalize_usage(once) == once


def test_anthropic_shape_is_exclusive_even_when_cache_dwarfs_input() -> None:
    # Were input_tokens read as inclusive, 5 - 900 - 100 would clamp to 0 and
    # the 5 uncached tokens would be lost.
    usage = normalize_usage(
        {
            "input_tokens": 5,
            "output_tokens": 7,
            "cache_read_input_tokens": 900,
            "cache_creation_input_tokens": 100,
        }
    )
    assert usage == {
        "input": 5,
        "cache_read": 900,
        "cache_write": 100,
        "output": 7,
        "total": 1012,  # 5 + 900 + 100 + 7
    }


def test_bedrock_converse_total_marks_cache_as_exclusive() -> None:
    # inputTokens + outputTokens + cache == totalTokens: 10 + 20 + 100 + 50 == 180
    usage = normalize_usage(
        {
            "inputTokens": 10,
            "outputTokens": 20,
            "totalTokens": 180,
            "cacheReadInputTokens": 100,
            "cacheWriteInputTokens": 50,
        }
    )
    assert usage == {"input": 10, "cache_read": 100, "cache_write": 50, "output": 20, "total": 180}


def test_langchain_anthropic_usage_metadata_is_inclusive() -> None:
    # LangChain folds Anthropic's cache into input_tokens: 5 + 900 + 100 = 1005
    usage = normalize_usage(
        {
            "input_tokens": 1005,
            "output_tokens": 7,
            "total_tokens": 1012,
            "input_token_details": {"cache_read": 900, "cache_creation": 100},
        }
    )
    assert usage == {"input": 5, "cache_read": 900, "cache_write": 100, "output": 7, "total": 1012}


def test_details_exceeding_their_total_are_clamped_not_negative() -> None:
    usage = normalize_usage(
        {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": 25},
            "completion_tokens_details": {"reasoning_tokens": 9},
        }
    )
    assert usage["input"] == 0  # max(0, 10 - 25)
    assert usage["output"] == 0  # max(0, 5 - 9)
    assert all(value >= 0 for value in usage.values())


def test_missing_total_is_the_sum_of_the_buckets() -> None:
    usage = normalize_usage({"prompt_tokens": 12, "completion_tokens": 7})
    assert usage == {"input": 12, "output": 7, "total": 19}


def test_other_units_are_kept_under_their_own_name() -> None:
    usage = normalize_usage({"image": 2, "characters": 120.5})
    assert usage == {"image": 2, "characters": 120.5, "total": 122.5}


def test_timings_and_costs_are_not_units() -> None:
    # Groq sends timings inside usage; they must not become buckets
    usage = normalize_usage(
        {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "total_tokens": 15,
            "queue_time": 0.01,
            "prompt_time": 0.002,
            "completion_time": 0.1,
            "total_time": 0.102,
            "total_cost": 0.5,
        }
    )
    assert usage == {"input": 10, "output": 5, "total": 15}


def test_unknown_side_breakdowns_are_folded_into_exclusive_buckets() -> None:
    # Langfuse-style keys with no headline input/output at all
    usage = normalize_usage(
        {
            "input_text_tokens": 10,
            "input_audio_tokens": 5,
            "output_text_tokens": 7,
            "output_audio_tokens": 3,
        }
    )
    assert usage == {"input": 10, "input_audio": 5, "output": 7, "output_audio": 3, "total": 25}


def test_garbage_values_are_ignored() -> None:
    usage = normalize_usage(
        {
            "prompt_tokens": "12",  # an integer string is fine
            "completion_tokens": "seven",
            "total_tokens": True,
            "prompt_tokens_details": {"cached_tokens": -4, "audio_tokens": None},
            "completion_tokens_details": {"reasoning_tokens": float("nan")},
            "weird": [1, 2, 3],
            "nested": {"deeper": object()},
            "image": "1.5",  # not an integer string
        }
    )
    assert usage == {"input": 12, "total": 12}


@pytest.mark.parametrize("raw", [None, {}, "oops", 42, [1, 2], {"total_tokens": False}])
def test_nothing_usable_gives_an_empty_dict(raw: Any) -> None:
    assert normalize_usage(raw) == {}


def test_integral_floats_become_ints() -> None:
    assert normalize_usage({"prompt_tokens": 12.0, "completion_tokens": 3}) == {
        "input": 12,
        "output": 3,
        "total": 15,
    }


def test_pydantic_sdk_objects_are_accepted() -> None:
    from pydantic import BaseModel

    class Details(BaseModel):
        cached_tokens: int | None = None

    class Usage(BaseModel):
        prompt_tokens: int
        completion_tokens: int
        total_tokens: int
        prompt_tokens_details: Details | None = None

    raw = Usage(
        prompt_tokens=20,
        completion_tokens=4,
        total_tokens=24,
        prompt_tokens_details=Details(cached_tokens=8),
    )
    assert normalize_usage(raw) == {  # type: ignore[arg-type]
        "input": 12,
        "cache_read": 8,
        "output": 4,
        "total": 24,
    }


# --------------------------------------------------------------------------
# pricing
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.default()


def test_shipped_prices_json_is_a_pure_array_found_via_importlib_resources() -> None:
    data = json.loads(resources.files("traceyard.cost").joinpath("prices.json").read_text())
    assert isinstance(data, list)
    assert all(set(item) == {"model", "match", "prices"} for item in data)
    assert len(PriceTable.default()) == len(data) >= 40


def test_default_table_is_cached(table: PriceTable) -> None:
    assert PriceTable.default() is table


def test_every_shipped_entry_answers_to_its_own_name(table: PriceTable) -> None:
    # also proves no earlier entry shadows a later one
    for entry in table.entries:
        assert table.find(entry.model) is entry, entry.model
        assert table.find(f"provider/{entry.model}") is entry, entry.model
        assert entry.prices, entry.model


def test_gpt_4o_mini_cost(table: PriceTable) -> None:
    costs = table.cost("gpt-4o-mini", {"input": 12, "output": 7})
    assert costs is not None
    assert costs["input"] == pytest.approx(12 * 1.5e-7)  # 1.8e-06
    assert costs["output"] == pytest.approx(7 * 6e-7)  # 4.2e-06
    assert costs["total"] == pytest.approx(12 * 1.5e-7 + 7 * 6e-7)  # 6.0e-06


def test_gpt_4o_mini_does_not_get_gpt_4o_price(table: PriceTable) -> None:
    mini = table.find("gpt-4o-mini")
    full = table.find("gpt-4o")
    assert mini is not None and full is not None
    assert mini.model == "gpt-4o-mini"
    assert full.model == "gpt-4o"
    assert table.find("gpt-4o-mini-2024-07-18") is mini
    assert mini.prices["input"] == pytest.approx(1.5e-7)
    assert full.prices["input"] == pytest.approx(2.5e-6)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-2024-11-20", "gpt-4o"),
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),
        ("openai/gpt-4o", "gpt-4o"),
        ("azure/gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("GPT-4O", "gpt-4o"),
        ("gpt-4.1-2025-04-14", "gpt-4.1"),
        ("gpt-4.1-mini", "gpt-4.1-mini"),
        ("gpt-4-0613", "gpt-4"),
        ("gpt-4-turbo-2024-04-09", "gpt-4-turbo"),
        ("gpt-4-1106-preview", "gpt-4-turbo"),
        ("gpt-35-turbo", "gpt-3.5-turbo"),
        ("o1-2024-12-17", "o1"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("o4-mini-2025-04-16", "o4-mini"),
        ("gpt-5-2025-08-07", "gpt-5"),
        ("gpt-5-mini-2025-08-07", "gpt-5-mini"),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
        ("anthropic/claude-3-5-sonnet-20240620", "claude-3-5-sonnet"),
        ("anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet"),
        ("us.anthropic.claude-3-7-sonnet-20250219-v1:0", "claude-3-7-sonnet"),
        ("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet"),
        ("claude-3-haiku-20240307", "claude-3-haiku"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-sonnet-4@20250514", "claude-sonnet-4"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
        ("openrouter/anthropic/claude-sonnet-4.5", "claude-sonnet-4-5"),
        ("claude-opus-4-20250514", "claude-opus-4"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("models/gemini-2.5-flash", "gemini-2.5-flash"),
        ("gemini-2.5-flash-preview-05-20", "gemini-2.5-flash"),
        ("gemini-2.5-flash-lite", "gemini-2.5-flash-lite"),
        ("gemini-1.5-flash-002", "gemini-1.5-flash"),
        ("gemini-1.5-flash-8b", "gemini-1.5-flash-8b"),
        ("gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("publishers/google/models/gemini-2.5-pro", "gemini-2.5-pro"),
        ("mistral-large-latest", "mistral-large"),
        ("mistral-small-2503", "mistral-small"),
        ("text-embedding-3-small", "text-embedding-3-small"),
    ],
)
def test_dated_and_provider_variants_match(table: PriceTable, name: str, expected: str) -> None:
    entry = table.find(name)
    assert entry is not None, name
    assert entry.model == expected


@pytest.mark.parametrize(
    "name",
    [
        "gpt-4o-audio-preview",  # priced differently: must not fall to gpt-4o
        "gpt-4o-mini-tts",
        "o3-deep-research",
        "claude-sonnet-4-7",  # not sonnet-4
        "gemini-2.5-flash-image",
        "my-finetuned-model",
        "",
        "   ",
    ],
)
def test_unknown_models_are_not_found(table: PriceTable, name: str) -> None:
    assert table.find(name) is None
    assert table.cost(name, {"input": 10}) is None


def test_unknown_model_or_no_usage_costs_none(table: PriceTable) -> None:
    assert table.cost("no-such-model", {"input": 10, "output": 5}) is None
    assert table.cost(None, {"input": 10}) is None
    assert table.cost("gpt-4o", {}) is None
    assert table.cost("gpt-4o", None) is None
    # usage with nothing priceable is an unknown cost, not a zero cost
    assert table.cost("gpt-4o", {"total": 15}) is None


def test_cached_tokens_are_priced_at_cache_price_and_not_double_counted(table: PriceTable) -> None:
    usage = normalize_usage(
        {
            "prompt_tokens": 1000,
            "completion_tokens": 100,
            "total_tokens": 1100,
            "prompt_tokens_details": {"cached_tokens": 800},
        }
    )
    assert usage == {"input": 200, "cache_read": 800, "output": 100, "total": 1100}
    costs = table.cost("gpt-4o", usage)
    assert costs is not None
    # 200 * 2.5e-6 = 5e-4; 800 * 1.25e-6 = 1e-3; 100 * 1e-5 = 1e-3; total 2.5e-3
    assert costs["input"] == pytest.approx(200 * 2.5e-6)
    assert costs["cache_read"] == pytest.approx(800 * 1.25e-6)
    assert costs["output"] == pytest.approx(100 * 1e-5)
    assert costs["total"] == pytest.approx(2.5e-3)
    # charging all 1000 prompt tokens at the input price would have been 3.5e-3
    assert costs["total"] < 1000 * 2.5e-6 + 100 * 1e-5


def test_anthropic_cache_write_and_read_use_their_own_prices(table: PriceTable) -> None:
    usage = normalize_usage(
        {
            "input_tokens": 10,
            "output_tokens": 20,
            "cache_read_input_tokens": 1000,
            "cache_creation_input_tokens": 100,
        }
    )
    costs = compute_cost("claude-3-5-sonnet-20241022", usage)
    assert costs is not None
    # 10*3e-6 + 1000*3e-7 + 100*3.75e-6 + 20*1.5e-5 = 3e-5 + 3e-4 + 3.75e-4 + 3e-4 = 1.005e-3
    assert costs["cache_read"] == pytest.approx(1000 * 3e-7)
    assert costs["cache_write"] == pytest.approx(100 * 3.75e-6)
    assert costs["total"] == pytest.approx(1.005e-3)


def test_reasoning_priced_at_output_price_without_own_price(table: PriceTable) -> None:
    entry = table.find("o3-mini")
    assert entry is not None and "reasoning" not in entry.prices
    costs = table.cost("o3-mini", {"input": 100, "output": 10, "reasoning": 90, "total": 200})
    assert costs is not None
    # 90 * 4.4e-6 = 3.96e-4; total = 100*1.1e-6 + 10*4.4e-6 + 90*4.4e-6 = 5.5e-4
    assert costs["reasoning"] == pytest.approx(90 * 4.4e-6)
    assert costs["total"] == pytest.approx(100 * 1.1e-6 + 100 * 4.4e-6)
    assert "total" in costs and len(costs) == 4  # the usage total is not priced itself


def test_fallbacks_and_own_prices_for_other_buckets() -> None:
    table = PriceTable(
        [
            PriceEntry(
                model="m",
                prices={"input": 1.0, "output": 2.0, "reasoning": 3.0, "image": 0.5},
            )
        ]
    )
    costs = table.cost(
        "m",
        {
            "input": 1,
            "cache_read": 1,  # falls back to input: 1.0
            "cache_write": 1,  # falls back to input: 1.0
            "input_audio": 1,  # falls back to input: 1.0
            "output": 1,
            "reasoning": 1,  # own price: 3.0
            "output_audio": 1,  # falls back to output: 2.0
            "image": 2,  # named by the entry: 2 * 0.5
            "characters": 100,  # not named: unpriced
            "total": 999,
        },
    )
    assert costs == {
        "input": 1.0,
        "cache_read": 1.0,
        "cache_write": 1.0,
        "input_audio": 1.0,
        "output": 2.0,
        "reasoning": 3.0,
        "output_audio": 2.0,
        "image": 1.0,
        "total": 12.0,
    }


def test_non_numeric_usage_values_are_skipped_when_pricing() -> None:
    table = PriceTable([PriceEntry(model="m", prices={"input": 1.0, "output": 2.0})])
    usage: Any = {"input": "3", "output": 2, "reasoning": True, "cache_read": -1}
    assert table.cost("m", usage) == {"output": 4.0, "total": 4.0}


def test_user_override_beats_shipped_entry(table: PriceTable) -> None:
    custom = table.with_overrides(
        [PriceEntry(model="gpt-4o", prices={"input": 1e-6, "output": 2e-6})]
    )
    costs = custom.cost("gpt-4o-2024-08-06", {"input": 10, "output": 10})
    # the default match is the escaped name only, so the dated variant still
    # falls through to the shipped entry: 10*2.5e-6 + 10*1e-5 = 1.25e-4
    assert costs is not None and costs["total"] == pytest.approx(1.25e-4)
    costs = custom.cost("openai/gpt-4o", {"input": 10, "output": 10})
    # 10*1e-6 + 10*2e-6 = 3e-5
    assert costs is not None and costs["total"] == pytest.approx(3e-5)
    # the plain name takes the override: 10 * 1e-6
    assert custom.cost("gpt-4o", {"input": 10}) == pytest.approx({"input": 1e-5, "total": 1e-5})
    # the shipped table is untouched: 10 * 2.5e-6
    assert table.cost("gpt-4o", {"input": 10}) == pytest.approx({"input": 2.5e-5, "total": 2.5e-5})


def test_user_can_add_a_model_with_a_regex(table: PriceTable) -> None:
    custom = table.with_overrides(
        [PriceEntry(model="acme", match=r"acme-(small|large)-v\d+", prices={"input": 1e-6})]
    )
    assert custom.find("ACME-large-v2") is not None
    assert custom.find("acme-large-v2-extra") is None  # full match only
    costs = compute_cost("acme-small-v1", {"input": 4}, custom)
    assert costs is not None
    assert costs == pytest.approx({"input": 4e-6, "total": 4e-6})  # 4 * 1e-6
    assert table.find("acme-small-v1") is None


def test_default_match_allows_provider_prefix_and_escapes_the_name() -> None:
    entry = PriceEntry(model="my.model+1", prices={"input": 1.0})
    assert entry.matches("my.model+1")
    assert entry.matches("MyProvider/my.model+1")
    assert not entry.matches("myXmodel+1")  # the dot is literal
    assert not entry.matches("my.model+1-extra")


def test_invalid_regex_is_a_validation_error_with_a_clear_message() -> None:
    with pytest.raises(ValidationError) as excinfo:
        PriceEntry(model="broken", match="gpt-(4o", prices={"input": 1.0})
    message = str(excinfo.value)
    assert "match" in message
    assert "not a valid regular expression" in message
    assert "missing )" in message


def test_negative_or_non_finite_prices_are_rejected() -> None:
    with pytest.raises(ValidationError):
        PriceEntry(model="m", prices={"input": -1.0})
    with pytest.raises(ValidationError):
        PriceEntry(model="m", prices={"input": float("inf")})


def test_find_is_memoised_per_model_name(monkeypatch: pytest.MonkeyPatch) -> None:
    table = PriceTable([PriceEntry(model="a", prices={"input": 1.0})])
    calls: list[str] = []
    original = PriceTable._scan

    def counting(self: PriceTable, model: str) -> PriceEntry | None:
        calls.append(model)
        return original(self, model)

    # the cache wraps the bound method at construction, so patch before building
    monkeypatch.setattr(PriceTable, "_scan", counting)
    table = PriceTable(table.entries)
    for _ in range(5):
        table.cost("a", {"input": 1})
        table.cost("zzz", {"input": 1})
    assert calls == ["a", "zzz"]


def test_cost_is_safe_from_many_threads(table: PriceTable) -> None:
    results: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(200):
            costs = table.cost("gpt-4o-mini", {"input": 12, "output": 7})
            assert costs is not None
            with lock:
                results.append(costs["total"])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 800
    assert set(results) == {results[0]}


def test_public_api_is_sorted_and_complete() -> None:
    assert cost_module.__all__ == sorted(cost_module.__all__)
    assert set(cost_module.__all__) == {
        "PriceEntry",
        "PriceTable",
        "compute_cost",
        "normalize_usage",
    }

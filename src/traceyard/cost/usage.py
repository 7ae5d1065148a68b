"""Turn whatever usage object a client reports into one canonical, disjoint model.

Every SDK and convention reports token usage differently, and crucially they
disagree on whether the headline prompt/completion counts *include* the cache,
audio and reasoning breakdowns.  Cost is computed per bucket, so the canonical
model keeps the buckets disjoint: summing them never double counts and never
loses tokens.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, TypeAlias

__all__ = ["normalize_usage"]

Number: TypeAlias = int | float

# Prefixes that OpenTelemetry GenAI and OpenInference attribute names carry; a
# caller that flattened span attributes may or may not have stripped them.
_ATTRIBUTE_PREFIXES = ("gen_ai.usage.", "llm.token_count.")

# Each alias tuple is in priority order: if a client sends two spellings of the
# same figure (OTel emits both ``input_tokens`` and the deprecated
# ``prompt_tokens``) the first wins and the rest are consumed, not re-counted.
_PROMPT_KEYS = (
    "prompt_tokens",  # OpenAI chat, LiteLLM, Langfuse promptTokens, OTel (deprecated)
    "input_tokens",  # OpenAI responses, LangChain, Anthropic, OTel, Bedrock, AI SDK
    "prompt",  # OpenInference
    "input",  # Langfuse / LiteLLM usage_details
    "prompt_token_count",  # Gemini
    "prompt_eval_count",  # Ollama
)
_COMPLETION_KEYS = (
    "completion_tokens",
    "output_tokens",
    "completion",
    "output",
    "candidates_token_count",
    "eval_count",
)
_TOTAL_KEYS = ("total_tokens", "total", "total_token_count")
_CACHE_READ_KEYS = (
    "prompt_tokens_details.cached_tokens",
    "input_tokens_details.cached_tokens",
    "input_token_details.cache_read",
    "cache_read_input_tokens",
    "cache_read.input_tokens",
    "prompt_details.cache_read",
    "cached_content_token_count",
    "input_cached_tokens",
    "input_cache_read",
    "cached_input_tokens",
    "prompt_cache_hit_tokens",
    "cache_read",
)
_CACHE_WRITE_KEYS = (
    "cache_creation_input_tokens",
    "cache_write_input_tokens",
    "input_token_details.cache_creation",
    "cache_creation.input_tokens",
    "cache_write.input_tokens",
    "prompt_details.cache_write",
    "input_cache_creation",
    "input_cache_write",
    "cache_write",
)
_REASONING_KEYS = (
    "completion_tokens_details.reasoning_tokens",
    "output_tokens_details.reasoning_tokens",
    "output_token_details.reasoning",
    "reasoning.output_tokens",
    "completion_details.reasoning",
    "output_reasoning_tokens",
    "output_reasoning",
    "thoughts_token_count",
    "reasoning_tokens",
    "reasoning",
)
_INPUT_AUDIO_KEYS = (
    "prompt_tokens_details.audio_tokens",
    "input_tokens_details.audio_tokens",
    "input_token_details.audio",
    "prompt_details.audio",
    "prompt_tokens_details.audio",  # Gemini modality breakdown
    "input_audio_tokens",
    "input_audio",
)
_OUTPUT_AUDIO_KEYS = (
    "completion_tokens_details.audio_tokens",
    "output_tokens_details.audio_tokens",
    "output_token_details.audio",
    "completion_details.audio",
    "candidates_tokens_details.audio",  # Gemini modality breakdown
    "output_audio_tokens",
    "output_audio",
)
# Nested figures that are real billable units rather than breakdowns.
_UNIT_ALIASES = {"server_tool_use.web_search_requests": "web_search_requests"}

_GEMINI_TOOL_PROMPT = "tool_use_prompt_token_count"
_GEMINI_CACHED_AUDIO = "cache_tokens_details.audio"
_GEMINI_OUTPUT_AUDIO = "candidates_tokens_details.audio"

# Whether the headline count of each family includes its breakdowns, used
# when the client's total cannot tell us.
_PROMPT_INCLUSIVE = {
    "prompt_tokens": True,
    "input_tokens": True,
    "prompt": True,
    "input": False,
    "prompt_token_count": True,
    "prompt_eval_count": True,
}
_COMPLETION_INCLUSIVE = {
    "completion_tokens": True,
    "output_tokens": True,
    "completion": True,
    "output": False,
    "candidates_token_count": False,  # Gemini reports thoughts beside candidates
    "eval_count": True,
}
_ANTHROPIC_CACHE_KEYS = frozenset(
    {"cache_read_input_tokens", "cache_creation_input_tokens", "cache_write_input_tokens"}
)

_INPUT_SIDE_PREFIXES = ("input_", "prompt_")
_OUTPUT_SIDE_PREFIXES = ("output_", "completion_")
# Numeric keys that describe the call rather than count a billable unit.
_NOT_A_UNIT = re.compile(r"(?:^|_)(?:cost|price|time|duration|latency|ms|ns)$")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_MAX_DEPTH = 4

_TOKEN_BUCKETS = frozenset(
    {"input", "cache_read", "cache_write", "input_audio", "output", "reasoning", "output_audio"}
)
# (prompt inclusive, completion inclusive), most plausible first.
_COMBINATIONS = ((True, True), (False, False), (False, True), (True, False))

# Every alias of every figure -> (figure, priority within the figure).
_FIGURE_ALIASES = {
    key: (figure, rank)
    for figure, keys in (
        ("prompt", _PROMPT_KEYS),
        ("completion", _COMPLETION_KEYS),
        ("total", _TOTAL_KEYS),
        ("cache_read", _CACHE_READ_KEYS),
        ("cache_write", _CACHE_WRITE_KEYS),
        ("reasoning", _REASONING_KEYS),
        ("input_audio", _INPUT_AUDIO_KEYS),
        ("output_audio", _OUTPUT_AUDIO_KEYS),
    )
    for rank, key in enumerate(keys)
}
_ABSENT: tuple[int, str | None, Number | None] = (0, None, None)
# Values that are neither mappings nor lists: straight to _as_number.
_SCALARS = frozenset({int, float, str, bool, type(None)})


def normalize_usage(raw: Mapping[str, Any] | None) -> dict[str, int | float]:
    """Map any client's usage report onto disjoint buckets.

    Buckets: ``input`` (prompt tokens neither read from nor written to a cache),
    ``cache_read``, ``cache_write``, ``input_audio``, ``output`` (completion
    tokens that are not reasoning), ``reasoning``, ``output_audio``, any other
    named unit under its snake_case name (``image``, ``characters``,
    ``web_search_requests`` ...), and ``total``: the client's total if it sent
    one, else the sum of the token buckets (or of all buckets when there are
    no tokens, e.g. a characters-only usage).  ``input``/``output``/``total``
    are kept when zero; empty breakdowns are dropped.

    Keys may be camelCase, nested or already dot-flattened; ``gen_ai.usage.``
    and ``llm.token_count.`` prefixes are ignored.

    Inclusive or exclusive?  The prompt count either contains the cache/audio
    breakdowns (they are subtracted) or sits beside them (they are added):

    1. If the client sent a total and any breakdown, the reading under which
       the buckets add up to that total wins (e.g. Langfuse ``input + output ==
       total`` means the cache figures are inside ``input``; Anthropic/Bedrock
       ``input + output + cache == total`` means they are not).
    2. Otherwise the family of the headline key decides: OpenAI
       ``prompt_tokens``/``completion_tokens``, ``input_tokens``/
       ``output_tokens`` (OpenAI responses, LangChain, OTel GenAI),
       OpenInference ``prompt``/``completion`` and Gemini
       ``promptTokenCount`` are inclusive; Langfuse/LiteLLM ``input``/
       ``output`` already exclude their details (Langfuse's own
       normalisation); ``input_tokens`` next to Anthropic's
       ``cache_*_input_tokens`` keys is Anthropic's raw shape, which excludes
       the cache; Gemini's ``thoughtsTokenCount`` is reported beside
       ``candidatesTokenCount``, not inside it.

    Unrecognised nested keys are dropped because they break down a count
    already taken; unrecognised top-level ``input_*``/``output_*`` token keys
    are treated as further breakdowns of that side; other top-level numbers
    are kept as their own unit unless they look like costs or timings.
    Garbage (None, bools, negatives, non-integer strings) is ignored and
    results are clamped at zero, so this never raises.
    """
    mapping = _as_mapping(raw)
    if mapping is None:
        return {}
    flat: dict[str, Number] = {}
    _flatten(mapping, "", flat, 0)
    if not flat:
        return {}

    anthropic_cache = not flat.keys().isdisjoint(_ANTHROPIC_CACHE_KEYS)
    gemini_output_audio = flat.get(_GEMINI_OUTPUT_AUDIO)
    figures, flat = _take_figures(flat)
    _, prompt_key, prompt = figures.get("prompt", _ABSENT)
    _, completion_key, completion = figures.get("completion", _ABSENT)
    total = figures.get("total", _ABSENT)[2]
    cache_read = figures.get("cache_read", _ABSENT)[2] or 0
    cache_write = figures.get("cache_write", _ABSENT)[2] or 0
    reasoning = figures.get("reasoning", _ABSENT)[2] or 0
    input_audio = figures.get("input_audio", _ABSENT)[2] or 0
    output_audio = figures.get("output_audio", _ABSENT)[2] or 0

    # Gemini quirks: tool-use prompt tokens are billed as input but reported
    # beside the prompt; cached audio is counted in both cache and audio
    # details; output audio sits inside candidates although thoughts do not.
    tool_prompt = flat.pop(_GEMINI_TOOL_PROMPT, None)
    if tool_prompt is not None:
        prompt = (prompt or 0) + tool_prompt
    cached_audio = flat.pop(_GEMINI_CACHED_AUDIO, None)
    if cached_audio is not None:
        input_audio = max(0, input_audio - cached_audio)
    if gemini_output_audio is not None and completion is not None:
        completion = max(0, completion - gemini_output_audio)

    units: dict[str, Number] = {}
    extra_in: Number = 0
    extra_out: Number = 0
    for key, value in flat.items():
        if key in _UNIT_ALIASES:
            units[_UNIT_ALIASES[key]] = value
        elif "." in key or _NOT_A_UNIT.search(key):
            continue
        elif "token" in key:
            if key.startswith(_INPUT_SIDE_PREFIXES):
                extra_in += value
            elif key.startswith(_OUTPUT_SIDE_PREFIXES):
                extra_out += value
        else:
            units[key] = value

    in_details = cache_read + cache_write + input_audio + extra_in
    out_details = reasoning + output_audio + extra_out
    prompt_inclusive = prompt is not None and _PROMPT_INCLUSIVE.get(prompt_key or "", False)
    if prompt_key == "input_tokens" and anthropic_cache:
        prompt_inclusive = False
    completion_inclusive = completion is not None and _COMPLETION_INCLUSIVE.get(
        completion_key or "", False
    )
    if total is not None and (in_details or out_details):
        prompt_inclusive, completion_inclusive = _decide_by_total(
            (prompt_inclusive, completion_inclusive),
            prompt,
            completion,
            in_details,
            out_details,
            total,
        )

    result: dict[str, Number] = {}
    if prompt_inclusive and prompt is not None:
        result["input"] = max(0, prompt - cache_read - cache_write - input_audio)
    elif prompt is not None or extra_in:
        result["input"] = (prompt or 0) + extra_in
    _put_positive(result, "cache_read", cache_read)
    _put_positive(result, "cache_write", cache_write)
    _put_positive(result, "input_audio", input_audio)
    if completion_inclusive and completion is not None:
        result["output"] = max(0, completion - reasoning - output_audio)
    elif completion is not None or extra_out:
        result["output"] = (completion or 0) + extra_out
    _put_positive(result, "reasoning", reasoning)
    _put_positive(result, "output_audio", output_audio)
    for key, value in units.items():
        result.setdefault(key, value)

    if total is not None:
        result["total"] = total
    elif result:
        # A client's total counts tokens, so ours does too whenever there are
        # tokens; adding web searches or images to it would mix units.
        tokens = [value for key, value in result.items() if key in _TOKEN_BUCKETS]
        result["total"] = sum(tokens) if tokens else sum(result.values())
    return result


def _decide_by_total(
    default: tuple[bool, bool],
    prompt: Number | None,
    completion: Number | None,
    in_details: Number,
    out_details: Number,
    total: Number,
) -> tuple[bool, bool]:
    """Pick the inclusive/exclusive reading under which the buckets sum to the total."""
    matching: list[tuple[bool, bool]] = []
    for prompt_inclusive, completion_inclusive in _COMBINATIONS:
        expected = (prompt or 0) + (completion or 0)
        if prompt is None or not prompt_inclusive:
            expected += in_details
        if completion is None or not completion_inclusive:
            expected += out_details
        if math.isclose(expected, total, rel_tol=1e-9, abs_tol=1e-9):
            matching.append((prompt_inclusive, completion_inclusive))
    if not matching or default in matching:
        return default
    return matching[0]


def _put_positive(result: dict[str, Number], key: str, value: Number) -> None:
    if value > 0:
        result[key] = value


def _take_figures(
    flat: dict[str, Number],
) -> tuple[dict[str, tuple[int, str | None, Number | None]], dict[str, Number]]:
    """Each figure's highest-priority alias present (figure -> (priority, key, value)), and
    the keys that are no alias, in their order. The other aliases of a figure are consumed,
    not re-counted. One lookup per reported key, rather than one per known alias."""
    found: dict[str, tuple[int, str | None, Number | None]] = {}
    rest: dict[str, Number] = {}
    for key, value in flat.items():
        alias = _FIGURE_ALIASES.get(key)
        if alias is None:
            rest[key] = value
            continue
        figure, rank = alias
        best = found.get(figure)
        if best is None or rank < best[0]:
            found[figure] = (rank, key, value)
    return found, rest


def _flatten(raw: Mapping[Any, Any], prefix: str, out: dict[str, Number], depth: int) -> None:
    for key, value in raw.items():
        if type(value) in _SCALARS:  # the usual case: no need to probe for a mapping
            number = _as_number(value)
            if number is not None:
                out.setdefault(_leaf_name(prefix, key), number)
            continue
        name = prefix + _canonical_key(key)
        nested = _as_mapping(value)
        if nested is not None:
            if depth < _MAX_DEPTH:
                _flatten(nested, name + ".", out, depth + 1)
        elif isinstance(value, (list, tuple)):
            _flatten_modalities(value, name, out)
        else:
            number = _as_number(value)
            if number is not None:
                out.setdefault(_leaf_name(prefix, key), number)


def _flatten_modalities(items: Iterable[Any], name: str, out: dict[str, Number]) -> None:
    """Gemini reports per-modality counts as ``[{modality, tokenCount}, ...]``."""
    for item in items:
        entry = _as_mapping(item)
        if entry is None:
            continue
        modality = entry.get("modality")
        count = _as_number(entry.get("tokenCount", entry.get("token_count")))
        modality = getattr(modality, "value", modality)
        if isinstance(modality, str) and modality and count is not None:
            key = _strip_prefix(f"{name}.{modality.lower()}")
            out[key] = out.get(key, 0) + count


@lru_cache(maxsize=1024)
def _canonical_key(key: object) -> str:
    """camelCase -> snake_case so JS/protobuf spellings share the Python aliases."""
    return _CAMEL_BOUNDARY.sub("_", str(key).strip()).lower()


@lru_cache(maxsize=1024)
def _leaf_name(prefix: str, key: object) -> str:
    """The flattened name of a number: the same few keys on every call, so cached."""
    return _strip_prefix(prefix + _canonical_key(key))


def _strip_prefix(name: str) -> str:
    for prefix in _ATTRIBUTE_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def _as_mapping(value: object) -> Mapping[Any, Any] | None:
    """Accept plain mappings and pydantic-style SDK objects (``model_dump``)."""
    if isinstance(value, dict):  # the usual case, without the ABC check
        return value
    if isinstance(value, Mapping):
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            dumped = dump()
        except Exception:
            return None
        if isinstance(dumped, Mapping):
            return dumped
    return None


def _as_number(value: object) -> Number | None:
    """A non-negative finite number, or None for anything a client should not have sent."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float):
        if not math.isfinite(value) or value < 0:
            return None
        return int(value) if value.is_integer() else value
    if isinstance(value, str):
        try:
            parsed = int(value.strip())
        except ValueError:
            return None
        return parsed if parsed >= 0 else None
    if isinstance(value, numbers.Integral):
        return _as_number(int(value))
    if isinstance(value, numbers.Real):
        return _as_number(float(value))
    return None

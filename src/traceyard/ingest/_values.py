"""Small value coercions shared by the wire translators (times, JSON-ish strings, costs)."""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

import orjson

from traceyard.model import Level

_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?"
    r"\s*(Z|z|[+-]\d{2}:?\d{2})?$"
)


def parse_time_ns(value: Any) -> int | None:
    """An ISO 8601 string (any fraction length, ``Z`` or offset; naive means UTC), a
    double-encoded one (``"\\"2026-...\\""``, as Langfuse SDKs send), a datetime, or epoch
    nanoseconds / milliseconds / seconds by magnitude, to integer nanoseconds. None if unreadable.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return int(aware.timestamp()) * 1_000_000_000 + aware.microsecond * 1000
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            return None
        if value > 1e17:  # already nanoseconds
            return int(value)
        if value > 1e11:  # milliseconds
            return int(value * 1_000_000)
        return int(value * 1_000_000_000)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.startswith('"'):
        try:
            text = str(orjson.loads(text)).strip()
        except ValueError:
            return None
    match = _ISO.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        base = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second or 0),
            tzinfo=timezone.utc,
        )
    except ValueError:
        return None
    ns = int(base.timestamp()) * 1_000_000_000
    if fraction:
        ns += int(fraction.ljust(9, "0"))
    if offset and offset not in ("Z", "z"):
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        ns -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60) * 1_000_000_000
    return ns


def maybe_json(value: Any) -> Any:
    """Decode a string that holds a JSON object or array; anything else is returned as is."""
    if isinstance(value, str):
        stripped = value.lstrip()
        if stripped[:1] in ("{", "["):
            try:
                return orjson.loads(value)
            except ValueError:
                return value
    return value


def json_or_raw(value: Any) -> Any:
    """Decode any JSON-encoded string (``"\\"search\\""`` -> ``"search"``); keep it raw if it
    is not JSON."""
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except ValueError:
            return value
    return value


_LEVELS = {
    "DEBUG": Level.DEBUG,
    "TRACE": Level.DEBUG,
    "DEFAULT": Level.DEFAULT,
    "INFO": Level.DEFAULT,
    "NOTICE": Level.DEFAULT,
    "WARNING": Level.WARNING,
    "WARN": Level.WARNING,
    "ERROR": Level.ERROR,
    "FATAL": Level.ERROR,
    "CRITICAL": Level.ERROR,
}


def parse_level(value: Any) -> Level | None:
    if not isinstance(value, str):
        return None
    return _LEVELS.get(value.strip().upper())


_COST_ALIASES = {
    "input": "input",
    "prompt": "input",
    "input_tokens": "input",
    "prompt_tokens": "input",
    "output": "output",
    "completion": "output",
    "output_tokens": "output",
    "completion_tokens": "output",
    "total": "total",
    "total_cost": "total",
    "input_cached_tokens": "cache_read",
    "cache_read_input_tokens": "cache_read",
    "input_cache_read": "cache_read",
    "cache_read": "cache_read",
    "cache_creation_input_tokens": "cache_write",
    "input_cache_creation": "cache_write",
    "cache_write": "cache_write",
    "output_reasoning_tokens": "reasoning",
    "reasoning_tokens": "reasoning",
    "reasoning": "reasoning",
}


def normalize_cost(raw: Any) -> dict[str, float]:
    """A client's cost record (USD) keyed by our usage buckets; ``total`` added if missing."""
    if not isinstance(raw, dict):
        return {}
    cost: dict[str, float] = {}
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not math.isfinite(value) or value < 0:
            continue
        name = _COST_ALIASES.get(str(key), str(key))
        cost[name] = cost.get(name, 0.0) + float(value)
    if cost and "total" not in cost:
        cost["total"] = sum(cost.values())
    return cost


_ENV_CHARS = re.compile(r"[^a-z0-9_-]")


def normalize_environment(value: Any) -> str | None:
    """Langfuse's rule: lowercase ``[a-z0-9_-]``, at most 40 characters."""
    if not isinstance(value, str):
        return None
    return _normalize_environment(value)


@lru_cache(maxsize=256)
def _normalize_environment(value: str) -> str | None:
    # Every span of a process carries the same one or two values: cache the regex work.
    env = _ENV_CHARS.sub("", value.strip().lower())[:40]
    return env or None


def as_str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float, bool)):
        return str(value)
    return None


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip().strip('"'))
        except ValueError:
            return None
    return None


def as_tags(value: Any) -> list[str] | None:
    """Tags as a list of strings, from a list, a JSON array string or a comma-separated string."""
    if value is None:
        return None
    if isinstance(value, str):
        decoded = maybe_json(value)
        if isinstance(decoded, list):
            value = decoded
        else:
            return [part.strip() for part in value.split(",") if part.strip()] or None
    if isinstance(value, (list, tuple)):
        tags = [str(item) for item in value if item is not None and str(item) != ""]
        return tags or None
    return None

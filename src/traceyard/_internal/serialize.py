"""Turning whatever an app passes as input/output/metadata into JSON, without ever failing.

Runs on the writer thread, not the app's. orjson walks the value in C (5-10x faster than the
stdlib on the writer's hot path, bench/writer_ceiling.py) and calls :func:`_fallback` only for
objects it does not know; anything orjson refuses (ints over 64 bits, very deep nesting) falls
back to the stdlib encoder, and anything that still fails becomes its ``repr``.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from pathlib import PurePath
from typing import Any
from uuid import UUID

import orjson

_MAX_REPR = 10_000


class Lazy:
    """A conversion deferred to the writer thread: ``Lazy(fn, arg)`` serialises as ``fn(arg)``.

    Capture code wraps expensive conversions (LangChain messages, LLM results) in it so the
    app thread only pays for creating this small object.
    """

    __slots__ = ("arg", "fn")

    def __init__(self, fn: Any, arg: Any) -> None:
        self.fn = fn
        self.arg = arg

    def resolve(self) -> Any:
        return self.fn(self.arg)


_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def dumps(value: Any) -> str:
    """JSON text for any value; unknown objects become their ``repr`` (bounded)."""
    try:
        return orjson.dumps(value, default=_fallback, option=_ORJSON_OPTIONS).decode()
    except (orjson.JSONEncodeError, TypeError):
        pass
    try:
        return json.dumps(value, default=_fallback, ensure_ascii=False, separators=(",", ":"))
    except (ValueError, TypeError, RecursionError):
        # Circular structures, NaN-free encoders and the like: keep something readable.
        return json.dumps(_safe_repr(value))


def to_jsonable(value: Any) -> Any:
    """A detached, JSON-compatible copy of ``value`` (used by the in-memory store)."""
    return orjson.loads(dumps(value))


def _fallback(obj: Any) -> Any:
    if isinstance(obj, Lazy):
        return obj.resolve()
    if isinstance(obj, (datetime, date, time)):
        return obj.isoformat()
    if isinstance(obj, (UUID, Decimal, PurePath)):
        return str(obj)
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return {"$bytes_b64": base64.b64encode(bytes(obj)[:_MAX_REPR]).decode()}
    if isinstance(obj, BaseException):
        return {"type": type(obj).__name__, "message": str(obj)}
    model_dump = getattr(obj, "model_dump", None)
    if callable(model_dump):  # pydantic v2 models, including LangChain messages and documents
        try:
            return model_dump(mode="json")
        except Exception:
            return _safe_repr(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): v for k, v in obj.items()}
    to_dict = getattr(obj, "dict", None) or getattr(obj, "to_dict", None)
    if callable(to_dict):
        try:
            result = to_dict()
        except Exception:
            return _safe_repr(obj)
        if isinstance(result, Mapping):
            return dict(result)
    return _safe_repr(obj)


def _safe_repr(obj: Any) -> str:
    try:
        text = repr(obj)
    except Exception:
        text = f"<unrepresentable {type(obj).__name__}>"
    return text if len(text) <= _MAX_REPR else text[:_MAX_REPR] + "…"

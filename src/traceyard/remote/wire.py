"""The remote-mode wire format: canonical events as JSON, both ways.

A client in remote mode POSTs ``{"source": {...}, "events": [...]}`` to ``/api/ingest``. Each
event is the canonical :class:`~traceyard.model.Event` spelled out:
``{"entity": "observation", "id", "trace_id", "project", "fields": {...}}`` with the read
models' field names and times in integer nanoseconds, so the server needs no translation, only
validation. ``source`` says which host and process sent the batch; the server records it on
the traces (``metadata["traceyard.host"]``, ``metadata["traceyard.pid"]``).

Decoding validates every event on its own: a partly bad batch keeps its good events, and each
bad one is reported by index and id with what is wrong.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from traceyard._internal.serialize import dumps
from traceyard._version import __version__
from traceyard.model import (
    OBSERVATION_FIELDS,
    SCORE_FIELDS,
    TRACE_FIELDS,
    Entity,
    Event,
    Level,
    ObservationType,
    ScoreDataType,
    ScoreSource,
)

#: Trace metadata keys the server sets from the batch's ``source``.
HOST_KEY = "traceyard.host"
PID_KEY = "traceyard.pid"

MAX_EVENTS_PER_REQUEST = 100_000
MAX_ID_LENGTH = 800  # Langfuse's id limit; OTel ids are 16 or 32 hex characters
MAX_PROJECT_LENGTH = 200
MAX_REPORTED_ERRORS = 100

_ENTITY_NAMES = {Entity.TRACE: "trace", Entity.OBSERVATION: "observation", Entity.SCORE: "score"}
_ENTITIES = {name: entity for entity, name in _ENTITY_NAMES.items()}
_ALLOWED = {
    Entity.TRACE: TRACE_FIELDS,
    Entity.OBSERVATION: OBSERVATION_FIELDS,
    Entity.SCORE: SCORE_FIELDS,
}
_HOST = socket.gethostname()


def source_block() -> dict[str, Any]:
    """Who is sending (read per request: a forked child has a pid of its own)."""
    return {"host": _HOST, "pid": os.getpid(), "sdk": f"traceyard {__version__}"}


# ------------------------------------------------------------------------------ encode


def event_to_wire(event: Event) -> dict[str, Any]:
    return {
        "entity": _ENTITY_NAMES[event.entity],
        "id": event.id,
        "trace_id": event.trace_id,
        "project": event.project,
        "fields": event.fields,
    }


def encode_body(events: Sequence[Event], source: dict[str, Any] | None = None) -> bytes:
    """The JSON body for ``events``; payloads of any type are serialised as the stores do."""
    body = {"source": source or source_block(), "events": [event_to_wire(e) for e in events]}
    return dumps(body).encode()


# ------------------------------------------------------------------------------ decode


class BodyError(ValueError):
    """The body as a whole is unusable (not JSON, no events list): answered with 400."""


@dataclass
class DecodedBatch:
    events: list[Event] = field(default_factory=list)
    #: ``{"index", "id", "error"}`` per refused event (the first MAX_REPORTED_ERRORS)
    errors: list[dict[str, Any]] = field(default_factory=list)
    rejected: int = 0
    host: str | None = None
    pid: int | None = None

    def reject(self, index: int, event_id: Any, error: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(
                {
                    "index": index,
                    "id": event_id if isinstance(event_id, str) else None,
                    "error": error,
                }
            )


def decode_body(raw: bytes) -> DecodedBatch:
    """Parse and validate a request body; raises :class:`BodyError` only for the envelope."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BodyError(f"body is not valid JSON: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        raise BodyError('body must be an object {"source": {...}, "events": [...]}')
    items: list[Any] = body["events"]
    if len(items) > MAX_EVENTS_PER_REQUEST:
        raise BodyError(
            f"{len(items)} events in one request; send at most {MAX_EVENTS_PER_REQUEST}"
        )
    batch = DecodedBatch()
    source = body.get("source")
    if isinstance(source, dict):
        host, pid = source.get("host"), source.get("pid")
        if isinstance(host, str) and 0 < len(host) <= 255:
            batch.host = host
        if isinstance(pid, int) and not isinstance(pid, bool) and pid >= 0:
            batch.pid = pid
    for index, item in enumerate(items):
        try:
            batch.events.append(_event(item))
        except ValueError as exc:
            batch.reject(index, item.get("id") if isinstance(item, dict) else None, str(exc))
    return batch


def stamp_source(events: Sequence[Event], host: str | None, pid: int | None) -> None:
    """Record the sending host and process on each trace event (merged key by key)."""
    if host is None and pid is None:
        return
    stamp: dict[str, Any] = {}
    if host is not None:
        stamp[HOST_KEY] = host
    if pid is not None:
        stamp[PID_KEY] = pid
    for event in events:
        if event.entity is Entity.TRACE:
            metadata = event.fields.get("metadata")
            event.fields["metadata"] = {**metadata, **stamp} if metadata else dict(stamp)


def _event(item: Any) -> Event:
    if not isinstance(item, dict):
        raise ValueError("an event must be an object {entity, id, trace_id, project, fields}")
    entity = _ENTITIES.get(item.get("entity"))  # type: ignore[arg-type]
    if entity is None:
        raise ValueError(
            f"entity must be one of trace, observation, score; got {item.get('entity')!r}"
        )
    event_id = item.get("id")
    if not isinstance(event_id, str) or not event_id or len(event_id) > MAX_ID_LENGTH:
        raise ValueError(f"id must be a non-empty string of at most {MAX_ID_LENGTH} characters")
    trace_id = item.get("trace_id")
    if trace_id is None:
        trace_id = ""
    if not isinstance(trace_id, str) or len(trace_id) > MAX_ID_LENGTH:
        raise ValueError("trace_id must be a string")
    if entity is not Entity.SCORE and not trace_id:
        raise ValueError(f"a {_ENTITY_NAMES[entity]} needs a trace_id")
    project = item.get("project")
    if not isinstance(project, str) or not project.strip() or len(project) > MAX_PROJECT_LENGTH:
        raise ValueError(f"project must be a non-empty string of at most {MAX_PROJECT_LENGTH}")
    raw_fields = item.get("fields")
    if not isinstance(raw_fields, dict):
        raise ValueError("fields must be an object")
    allowed = _ALLOWED[entity]
    fields: dict[str, Any] = {}
    for key, value in raw_fields.items():
        if key not in allowed:
            raise ValueError(f"unknown {_ENTITY_NAMES[entity]} field {key!r}")
        if value is None:
            continue
        check = _CHECKS.get(key)
        fields[key] = check(key, value) if check is not None else value
    return Event(entity, event_id, trace_id, project.strip(), fields)


# ------------------------------------------------------------------------------ field checks


def _time(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key} must be integer nanoseconds since the epoch")
    return value


def _string(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    return value


def _object(key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{key} must be an object")
    return value


def _numbers(key: str, value: Any) -> dict[str, float]:
    if not isinstance(value, dict) or not all(_is_number(v) for v in value.values()):
        raise ValueError(f"{key} must be an object of numbers")
    return value


def _tags(key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise ValueError(f"{key} must be a list of strings")
    return value


def _number(key: str, value: Any) -> float:
    if not _is_number(value):
        raise ValueError(f"{key} must be a finite number")
    return float(value)


def _integer(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be an integer")
    return value


def _boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false")
    return value


def _enum(kind: Any) -> Callable[[str, Any], Any]:
    names = ", ".join(member.value for member in kind)

    def check(key: str, value: Any) -> Any:
        try:
            return kind(value)
        except ValueError:
            raise ValueError(f"{key} must be one of {names}; got {value!r}") from None

    return check


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "start_time": _time,
    "end_time": _time,
    "completion_start_time": _time,
    "timestamp": _time,
    "name": _string,
    "user_id": _string,
    "session_id": _string,
    "release": _string,
    "version": _string,
    "environment": _string,
    "parent_id": _string,
    "status_message": _string,
    "model": _string,
    "prompt_name": _string,
    "observation_id": _string,
    "string_value": _string,
    "comment": _string,
    "metadata": _object,
    "model_parameters": _object,
    "usage": _numbers,
    "cost": _numbers,
    "tags": _tags,
    "value": _number,
    "prompt_version": _integer,
    "incomplete": _boolean,
    "type": _enum(ObservationType),
    "level": _enum(Level),
    "data_type": _enum(ScoreDataType),
    "source": _enum(ScoreSource),
}

"""Export and import of whole traces as JSONL (used by ``traceyard export`` / ``import``).

One line per trace: the trace's fields, its ``observations`` and its ``scores``, payloads
included, times at microsecond precision (the read models' precision). Export → import →
export gives the same bytes, because every derived figure in a line is computed from the
line itself, never from the store's nanosecond times or its summation order:

* observations sorted by (start_time, id), scores by (timestamp, id), traces by
  (start_time, id) (ties at the same microsecond sorted by id);
* ``latency_ms`` and ``time_to_first_token_ms`` from the exported times;
* a trace's ``usage``, ``total_tokens`` and ``total_cost`` as exact sums (``math.fsum``) of
  its observations, usage buckets in key order.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import ValidationError

from traceyard.model import (
    Entity,
    Event,
    Observation,
    Score,
    TraceDetail,
    TraceStatus,
)
from traceyard.store.base import Store, TraceQuery, TraceSort

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
_PAGE = 500


def exact_ns(value: datetime | None) -> int | None:
    """A datetime to nanoseconds with integer arithmetic (no float rounding)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return ((value - _EPOCH) // _MICROSECOND) * 1000


def _ms(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return ((end - start) // _MICROSECOND) / 1000


# ---------------------------------------------------------------------- export


def iter_trace_ids(store: Store, query: TraceQuery) -> Iterator[str]:
    """Ids of the traces ``query`` matches, oldest first, ties at one microsecond by id."""
    query = query.model_copy(
        update={"sort": TraceSort.START_TIME, "descending": False, "limit": _PAGE, "cursor": None}
    )
    group: list[tuple[datetime | None, str]] = []
    while True:
        page = store.list_traces(query)
        for trace in page.data:
            if group and group[-1][0] != trace.start_time:
                yield from sorted(i for _, i in group)
                group = []
            group.append((trace.start_time, trace.id))
        if page.next_cursor is None:
            break
        query = query.model_copy(update={"cursor": page.next_cursor})
    yield from sorted(i for _, i in group)


def export_line(detail: TraceDetail) -> str:
    """One trace as one JSON line (no trailing newline)."""
    observations = sorted(
        detail.observations, key=lambda o: (o.start_time is None, o.start_time or _EPOCH, o.id)
    )
    scores = sorted(
        detail.scores or (), key=lambda s: (s.timestamp is None, s.timestamp or _EPOCH, s.id)
    )
    usage: dict[str, list[float]] = {}
    for observation in observations:
        for bucket, amount in observation.usage.items():
            usage.setdefault(bucket, []).append(amount)
    trace = detail.model_dump(mode="json", exclude={"observations", "scores"})
    trace.update(
        latency_ms=_ms(detail.start_time, detail.end_time),
        usage={bucket: math.fsum(usage[bucket]) for bucket in sorted(usage)},
        total_tokens=math.fsum(_tokens(o) for o in observations),
        total_cost=math.fsum(_cost(o) for o in observations),
        observations=[_observation_json(o) for o in observations],
        scores=[s.model_dump(mode="json") for s in scores],
    )
    return json.dumps(trace, ensure_ascii=False, separators=(",", ":"))


def _observation_json(observation: Observation) -> dict[str, Any]:
    data = observation.model_dump(mode="json")
    data["latency_ms"] = _ms(observation.start_time, observation.end_time)
    data["time_to_first_token_ms"] = _ms(observation.start_time, observation.completion_start_time)
    return data


def _tokens(observation: Observation) -> float:
    usage = observation.usage
    if "total" in usage:
        return usage["total"]
    return math.fsum(usage.values())


def _cost(observation: Observation) -> float:
    cost = observation.cost
    if "total" in cost:
        return cost["total"]
    return math.fsum(cost.values())


# ---------------------------------------------------------------------- import


class ImportLineError(ValueError):
    def __init__(self, line_number: int, message: str) -> None:
        super().__init__(f"line {line_number}: {message}")
        self.line_number = line_number


def parse_line(line: str, line_number: int) -> TraceDetail:
    try:
        return TraceDetail.model_validate_json(line)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "line"
        raise ImportLineError(
            line_number, f"{where}: {first['msg']} ({exc.error_count()} error(s))"
        ) from None


def events_for(detail: TraceDetail) -> list[Event]:
    """The events that recreate ``detail`` in a store (derived figures are recomputed)."""
    project = detail.project
    events = [
        Event(
            Entity.TRACE,
            detail.id,
            detail.id,
            project,
            {
                "name": detail.name,
                "user_id": detail.user_id,
                "session_id": detail.session_id,
                "tags": detail.tags or None,
                "metadata": detail.metadata or None,
                "release": detail.release,
                "version": detail.version,
                "environment": detail.environment,
                "input": detail.input,
                "output": detail.output,
                "start_time": exact_ns(detail.start_time),
                "end_time": exact_ns(detail.end_time),
                "incomplete": True if detail.status is TraceStatus.INCOMPLETE else None,
            },
        )
    ]
    for o in detail.observations:
        events.append(
            Event(
                Entity.OBSERVATION,
                o.id,
                detail.id,
                project,
                {
                    "parent_id": o.parent_id,
                    "type": o.type,
                    "name": o.name,
                    "start_time": exact_ns(o.start_time),
                    "end_time": exact_ns(o.end_time),
                    "level": o.level,
                    "status_message": o.status_message,
                    "input": o.input,
                    "output": o.output,
                    "metadata": o.metadata or None,
                    "model": o.model,
                    "model_parameters": o.model_parameters,
                    "usage": o.usage or None,
                    "cost": o.cost or None,
                    "completion_start_time": exact_ns(o.completion_start_time),
                    "prompt_name": o.prompt_name,
                    "prompt_version": o.prompt_version,
                },
            )
        )
    for s in detail.scores or ():
        events.append(_score_event(s, detail.id))
    return events


def _score_event(score: Score, trace_id: str) -> Event:
    return Event(
        Entity.SCORE,
        score.id,
        score.trace_id or trace_id,
        score.project,
        {
            "observation_id": score.observation_id,
            "session_id": score.session_id,
            "name": score.name,
            "value": score.value,
            "string_value": score.string_value,
            "data_type": score.data_type,
            "source": score.source,
            "comment": score.comment,
            "metadata": score.metadata or None,
            "timestamp": exact_ns(score.timestamp),
        },
    )


def import_lines(
    store: Store, lines: Iterable[str], batch_traces: int = 200
) -> tuple[int, list[ImportLineError]]:
    """Write every good line's trace; returns (traces imported, errors of bad lines).

    A bad line is reported and skipped: the good lines around it are still imported.
    """
    imported = 0
    errors: list[ImportLineError] = []
    batch: list[Event] = []
    pending = 0
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        try:
            batch.extend(events_for(parse_line(line, number)))
        except ImportLineError as exc:
            errors.append(exc)
            continue
        pending += 1
        if pending >= batch_traces:
            store.write(batch)
            imported += pending
            batch, pending = [], 0
    if batch:
        store.write(batch)
        imported += pending
    return imported, errors

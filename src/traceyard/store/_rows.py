"""Turning merged events into table rows: shared by the SQL backends so they agree exactly.

Everything here is plain Python on the writer thread; the backends only add their SQL.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from traceyard._internal.compress import compress_many, decompress
from traceyard._internal.serialize import dumps
from traceyard.cost.pricing import PriceTable
from traceyard.model import Entity, Event, merge_fields

#: Generations whose model the builder remembers (LRU): enough for the runs in flight.
_MODELS_REMEMBERED = 50_000

TRACE_COLUMNS = (
    "id",
    "project",
    "name",
    "user_id",
    "session_id",
    "tags",
    "metadata",
    "release",
    "version",
    "environment",
    "input",
    "input_ref",
    "output",
    "output_ref",
    "start_time",
    "end_time",
    "incomplete",
)

OBSERVATION_COLUMNS = (
    "id",
    "trace_id",
    "parent_id",
    "type",
    "name",
    "start_time",
    "end_time",
    "level",
    "status_message",
    "input",
    "input_ref",
    "output",
    "output_ref",
    "metadata",
    "model",
    "model_parameters",
    "usage",
    "cost",
    "cost_source",
    "total_tokens",
    "total_cost",
    "completion_start_time",
    "prompt_name",
    "prompt_version",
)

SCORE_COLUMNS = (
    "id",
    "trace_id",
    "observation_id",
    "session_id",
    "project",
    "name",
    "value",
    "string_value",
    "data_type",
    "source",
    "comment",
    "metadata",
    "timestamp",
)


def merge_events(events: Iterable[Event]) -> list[Event]:
    """Fold events that update the same entity into one, keeping first-seen order."""
    merged: dict[tuple[Entity, str], Event] = {}
    for event in events:
        key = (event.entity, event.id)
        seen = merged.get(key)
        if seen is None:
            merged[key] = Event(
                event.entity, event.id, event.trace_id, event.project, dict(event.fields)
            )
        else:
            merge_fields(seen.fields, event.fields)
            if not seen.trace_id:
                seen.trace_id = event.trace_id
    return list(merged.values())


@dataclass
class RowBatch:
    """One transaction's worth of rows, ready for ``executemany``."""

    traces: list[tuple[Any, ...]] = field(default_factory=list)
    observations: list[tuple[Any, ...]] = field(default_factory=list)
    scores: list[tuple[Any, ...]] = field(default_factory=list)
    #: (owner id, field, zstd-compressed JSON) for payloads above the blob threshold
    payloads: list[tuple[str, str, bytes]] = field(default_factory=list)
    #: every trace an event touched, with the project to create it under if it is new
    trace_projects: dict[str, str] = field(default_factory=dict)
    #: observations that got usage or a model but not both: priced after the upsert
    price_later: list[str] = field(default_factory=list)


class RowBuilder:
    """Builds :class:`RowBatch` es: serialises payloads, moves big ones aside, prices usage."""

    def __init__(self, blob_threshold_bytes: int, prices: PriceTable) -> None:
        self.blob_threshold_bytes = blob_threshold_bytes
        self.prices = prices
        #: model of recently started generations: a LangChain end event brings the usage
        #: without the model (that came with the start, usually in an earlier batch), and
        #: knowing it here saves the store a read-back and a second update of the row.
        self._models: OrderedDict[str, str] = OrderedDict()

    def build(self, events: Sequence[Event]) -> RowBatch:
        batch = RowBatch()
        for event in merge_events(events):
            if event.trace_id:
                batch.trace_projects.setdefault(event.trace_id, event.project)
            if event.entity is Entity.OBSERVATION:
                batch.observations.append(self._observation_row(event, batch))
            elif event.entity is Entity.TRACE:
                batch.traces.append(self._trace_row(event, batch))
            else:
                batch.scores.append(_score_row(event))
        if batch.payloads:  # uncompressed so far: all of them in one call
            compressed = compress_many([data for _, _, data in batch.payloads])
            batch.payloads = [
                (owner, name, data)
                for (owner, name, _), data in zip(batch.payloads, compressed, strict=True)
            ]
        return batch

    def _payload(
        self, batch: RowBatch, owner: str, name: str, fields: Mapping[str, Any], key: str
    ) -> tuple[str | None, int | None]:
        """(inline JSON, ref flag) for one payload field; both None when the event lacks it."""
        if key not in fields or fields[key] is None:
            return None, None
        text = dumps(fields[key])
        if len(text) <= self.blob_threshold_bytes:
            return text, None
        batch.payloads.append((owner, name, text.encode()))  # compressed by build()
        return None, 1

    def _remember_model(self, observation_id: str, model: str) -> None:
        models = self._models
        models[observation_id] = model
        models.move_to_end(observation_id)
        if len(models) > _MODELS_REMEMBERED:
            models.popitem(last=False)

    def _trace_row(self, event: Event, batch: RowBatch) -> tuple[Any, ...]:
        f = event.fields
        input_text, input_ref = self._payload(batch, event.id, "trace.input", f, "input")
        output_text, output_ref = self._payload(batch, event.id, "trace.output", f, "output")
        return (
            event.id,
            event.project,
            f.get("name"),
            f.get("user_id"),
            f.get("session_id"),
            _json_or_none(f.get("tags")),
            _json_or_none(f.get("metadata")),
            f.get("release"),
            f.get("version"),
            f.get("environment"),
            input_text,
            input_ref,
            output_text,
            output_ref,
            f.get("start_time"),
            f.get("end_time"),
            1 if f.get("incomplete") else None,
        )

    def _observation_row(self, event: Event, batch: RowBatch) -> tuple[Any, ...]:
        f = event.fields
        input_text, input_ref = self._payload(batch, event.id, "input", f, "input")
        output_text, output_ref = self._payload(batch, event.id, "output", f, "output")
        usage = f.get("usage") or None
        cost = f.get("cost") or None
        model = f.get("model")
        if model:
            self._remember_model(event.id, model)
        cost_source = None
        if cost:
            cost_source = "client"
        elif usage and (model or event.id in self._models):
            cost = self.prices.cost(model or self._models[event.id], usage)
            cost_source = "auto" if cost else None
        elif usage or model:
            batch.price_later.append(event.id)
        level = f.get("level")
        obs_type = f.get("type")
        return (
            event.id,
            event.trace_id,
            f.get("parent_id"),
            _enum_value(obs_type),
            f.get("name"),
            f.get("start_time"),
            f.get("end_time"),
            _enum_value(level),
            f.get("status_message"),
            input_text,
            input_ref,
            output_text,
            output_ref,
            _json_or_none(f.get("metadata")),
            model,
            _json_or_none(f.get("model_parameters")),
            _json_or_none(usage),
            _json_or_none(cost),
            cost_source,
            usage_total(usage),
            cost_total(cost),
            f.get("completion_start_time"),
            f.get("prompt_name"),
            f.get("prompt_version"),
        )


def _score_row(event: Event) -> tuple[Any, ...]:
    f = event.fields
    return (
        event.id,
        event.trace_id or None,
        f.get("observation_id"),
        f.get("session_id"),
        event.project,
        f.get("name") or "score",
        f.get("value"),
        f.get("string_value"),
        _enum_value(f.get("data_type")) or "numeric",
        _enum_value(f.get("source")) or "api",
        f.get("comment"),
        _json_or_none(f.get("metadata")),
        f.get("timestamp"),
    )


def usage_total(usage: Mapping[str, Any] | None) -> float | None:
    """Tokens of a usage dict: its ``total``, else the sum of its buckets."""
    if not usage:
        return None
    total = usage.get("total")
    if isinstance(total, (int, float)):
        return float(total)
    return float(sum(v for v in usage.values() if isinstance(v, (int, float))))


def cost_total(cost: Mapping[str, Any] | None) -> float | None:
    """USD of a cost dict: its ``total``, else the sum of its buckets."""
    if not cost:
        return None
    total = cost.get("total")
    if isinstance(total, (int, float)):
        return float(total)
    return float(sum(v for v in cost.values() if isinstance(v, (int, float))))


def _json_or_none(value: Any) -> str | None:
    return None if value is None else dumps(value)


def _enum_value(value: Any) -> Any:
    return getattr(value, "value", value)


def decompress_text(data: bytes) -> str:
    return decompress(data).decode()

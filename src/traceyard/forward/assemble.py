"""Partial updates in, finished spans out: what every forwarding target needs.

Canonical events are partial (an observation's start and its end arrive apart; trace
attributes arrive whenever the app sets them). OTLP spans are whole and immutable, and a
receiver maps a span without, say, a type to the default type, so sending partial spans would
overwrite what it already has. So observations are merged here until they end, and only then
become a :class:`SpanRecord` carrying a snapshot of their trace's attributes.

Trace attributes that arrive after the trace's root span was sent re-send the root span with
them (same span id: receivers that upsert by id, as traceyard does, take them; Phoenix keeps
the first copy), without its payloads so nothing big travels twice. Memory is bounded: past
``max_open`` unfinished observations the oldest is sent as it is (no end time), and trace
state is kept for the ``max_traces`` most recent traces.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from traceyard.model import Entity, Event, merge_fields

DEFAULT_MAX_OPEN = 20_000
DEFAULT_MAX_TRACES = 20_000
#: Fields left out when a finished span is sent again (only to carry new trace attributes).
_PAYLOAD_FIELDS = ("input", "output", "metadata", "model_parameters")


@dataclass
class SpanRecord:
    """One observation as it will be exported, with its trace's attributes at that moment."""

    id: str
    trace_id: str
    project: str
    fields: dict[str, Any]
    trace: dict[str, Any]
    is_root: bool
    #: False when sent before it ended (evicted, or still open at shutdown)
    finished: bool = True
    #: a finished root sent again only to carry trace attributes that came later
    resent: bool = False


@dataclass
class _Trace:
    project: str
    fields: dict[str, Any] = field(default_factory=dict)
    #: the root span as sent (without payloads), to re-send when trace attributes change
    sent_root: SpanRecord | None = None
    changed: bool = False


@dataclass
class _Open:
    trace_id: str
    project: str
    fields: dict[str, Any]


class Assembler:
    """Not thread-safe: one per forwarding thread."""

    def __init__(self, max_open: int = DEFAULT_MAX_OPEN, max_traces: int = DEFAULT_MAX_TRACES):
        self.max_open = max_open
        self.max_traces = max_traces
        self._open: OrderedDict[str, _Open] = OrderedDict()
        self._ready: list[tuple[str, _Open, bool]] = []
        self._traces: OrderedDict[str, _Trace] = OrderedDict()
        self._scores: list[Event] = []
        #: what was sent of recent observations (no payloads): an update that comes after
        #: one was sent merges into it, so the re-sent span is whole, not a bare delta
        self._sent: OrderedDict[str, dict[str, Any]] = OrderedDict()

    @property
    def open_count(self) -> int:
        return len(self._open)

    def add(self, events: Iterable[Event]) -> None:
        for event in events:
            if event.entity is Entity.OBSERVATION:
                self._observation(event)
            elif event.entity is Entity.TRACE:
                trace = self._trace(event.trace_id or event.id, event.project)
                merge_fields(trace.fields, event.fields)
                trace.changed = True
            else:
                self._scores.append(event)
        while len(self._open) > self.max_open:
            obs_id, record = self._open.popitem(last=False)
            self._ready.append((obs_id, record, False))

    def take(self) -> tuple[list[SpanRecord], list[Event]]:
        """Spans ready to send (finished ones, roots re-sent for new trace attributes) and
        scores; everything returned is forgotten here."""
        spans: list[SpanRecord] = []
        ready, self._ready = self._ready, []
        for obs_id, record, finished in ready:
            trace = self._traces.get(record.trace_id)
            trace_fields = dict(trace.fields) if trace is not None else {}
            is_root = "parent_id" not in record.fields
            span = SpanRecord(
                obs_id,
                record.trace_id,
                record.project,
                record.fields,
                trace_fields,
                is_root,
                finished,
            )
            spans.append(span)
            self._remember_sent(obs_id, record.fields)
            if is_root and trace is not None:
                trace.changed = False
                trace.sent_root = _without_payloads(span)
        for trace in self._traces.values():
            if trace.changed and trace.sent_root is not None:
                trace.changed = False
                root = trace.sent_root
                spans.append(
                    SpanRecord(
                        root.id,
                        root.trace_id,
                        root.project,
                        dict(root.fields),
                        dict(trace.fields),
                        True,
                        root.finished,
                        resent=True,
                    )
                )
        scores, self._scores = self._scores, []
        return spans, scores

    def take_all(self) -> tuple[list[SpanRecord], list[Event]]:
        """Everything, unfinished observations included (at shutdown)."""
        for obs_id, record in self._open.items():
            self._ready.append((obs_id, record, False))
        self._open.clear()
        return self.take()

    # ------------------------------------------------------------------ internals

    def _observation(self, event: Event) -> None:
        record = self._open.get(event.id)
        if record is None:
            sent = self._sent.pop(event.id, None)
            record = _Open(event.trace_id, event.project, sent or {})
            self._open[event.id] = record
            self._trace(event.trace_id, event.project)  # keep the trace's attributes warm
        merge_fields(record.fields, event.fields)
        if record.fields.get("end_time") is not None:
            del self._open[event.id]
            self._ready.append((event.id, record, True))

    def _remember_sent(self, obs_id: str, fields: dict[str, Any]) -> None:
        self._sent[obs_id] = {k: v for k, v in fields.items() if k not in _PAYLOAD_FIELDS}
        self._sent.move_to_end(obs_id)
        if len(self._sent) > self.max_open:
            self._sent.popitem(last=False)

    def _trace(self, trace_id: str, project: str) -> _Trace:
        trace = self._traces.get(trace_id)
        if trace is None:
            trace = _Trace(project)
            self._traces[trace_id] = trace
            if len(self._traces) > self.max_traces:
                self._traces.popitem(last=False)
        else:
            self._traces.move_to_end(trace_id)
        return trace


def _without_payloads(span: SpanRecord) -> SpanRecord:
    fields = {k: v for k, v in span.fields.items() if k not in _PAYLOAD_FIELDS}
    return SpanRecord(span.id, span.trace_id, span.project, fields, {}, True, span.finished)

"""The in-memory store (``memory://``): nothing on disk, bounded, for tests, notebooks and
short-lived dev servers.

It keeps the ``max_traces`` traces written most recently and evicts the least recently
written first, so a trace that is still being written to, or that was just re-run, is never
the one to go. Re-running with the same ids (LangChain ``run_id``, a seeded trace id) replaces
the earlier run instead of piling its observations onto it: an observation that had ended and
is *started again* (a start event with a different start time) is a new run of that id. When
it is the root of its trace, the whole trace starts over.

Everything is kept as JSON-compatible copies made at write time, and reads deep-copy again,
so neither the events passed in nor the objects handed out ever alias what is stored. One lock
guards everything: the writer thread writes while server threads read.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from traceyard._internal.serialize import to_jsonable
from traceyard.cost.pricing import PriceTable
from traceyard.errors import StoreClosedError
from traceyard.model import (
    Entity,
    Event,
    Level,
    Observation,
    ObservationType,
    Score,
    ScoreDataType,
    ScoreSource,
    SessionDetail,
    SessionSummary,
    Trace,
    TraceDetail,
    TraceStatus,
    UserSummary,
    datetime_to_ns,
    merge_fields,
    ns_to_datetime,
)
from traceyard.store import _convert as convert
from traceyard.store._prompts import DEFAULT_LABEL, plan_new_version, plan_set_labels
from traceyard.store._rows import cost_total, usage_total
from traceyard.store._sql import usage_keys
from traceyard.store.base import (
    MediaRecord,
    Page,
    Prompt,
    PromptUsage,
    StoreCounts,
    TimeseriesGroup,
    TimeseriesPoint,
    TimeseriesQuery,
    TraceQuery,
    decode_cursor,
    encode_cursor,
)

#: Used when settings.retention_max_traces is unset: memory must be bounded somehow.
DEFAULT_MAX_TRACES = 10_000

#: Fields copied as JSON-compatible values (the SQL stores keep them as JSON text).
_JSON_FIELDS = frozenset(
    {"input", "output", "metadata", "model_parameters", "usage", "cost", "tags"}
)

K = TypeVar("K")


@dataclass
class _Obs:
    id: str
    trace_id: str
    fields: dict[str, Any] = field(default_factory=dict)
    cost_source: str | None = None


@dataclass
class _Score:
    id: str
    trace_id: str | None
    project: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Trace:
    id: str
    project: str
    created: int
    fields: dict[str, Any] = field(default_factory=dict)
    observations: dict[str, None] = field(default_factory=dict)  # ordered set of ids
    scores: dict[str, None] = field(default_factory=dict)
    # derived, as the SQL stores keep them
    start_ns: int = 0
    end_ns: int = 0
    latency_ms: float = 0.0
    status: TraceStatus = TraceStatus.RUNNING
    observation_count: int = 0
    error_count: int = 0
    #: observations per level (None stored counts as DEFAULT): what the level filter reads
    level_counts: dict[str, int] = field(default_factory=dict)
    usage: dict[str, float] = field(default_factory=dict)
    total_tokens: float = 0.0
    total_cost: float = 0.0


class MemoryStore:
    """A :class:`~traceyard.store.base.Store` in this process's memory."""

    backend = "memory"

    def __init__(self, max_traces: int | None = None, prices: PriceTable | None = None) -> None:
        self.max_traces = max_traces or DEFAULT_MAX_TRACES
        self.prices = prices or PriceTable.default()
        self._lock = threading.RLock()
        self._closed = False
        self._created = 0  # creation sequence, for latest_trace()
        #: least recently written first: the eviction order
        self._traces: OrderedDict[str, _Trace] = OrderedDict()
        self._observations: dict[str, _Obs] = {}
        self._scores: dict[str, _Score] = {}
        #: scores without a trace (session scores), bounded like traces
        self._loose_scores: OrderedDict[str, None] = OrderedDict()
        self._prompts: dict[tuple[str, str], dict[int, Prompt]] = {}
        self._media: OrderedDict[str, MediaRecord] = OrderedDict()

    # ------------------------------------------------------------------ lifecycle

    def _check(self) -> None:
        if self._closed:
            raise StoreClosedError("the memory store has been closed")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._traces.clear()
            self._observations.clear()
            self._scores.clear()
            self._loose_scores.clear()
            self._media.clear()

    # ------------------------------------------------------------------ writes

    def write(self, events: Sequence[Event]) -> None:
        if events:
            self.commit(self.prepare(events))

    def prepare(self, events: Sequence[Event]) -> list[tuple[Event, dict[str, Any]]]:
        """Each event with a detached, JSON-compatible copy of its fields."""
        return [(e, _copy_fields(e.fields)) for e in events]

    def commit(self, copied: list[tuple[Event, dict[str, Any]]]) -> None:
        if not copied:
            return
        with self._lock:
            self._check()
            touched: dict[str, None] = {}
            # Re-runs first, so a re-run's own trace attributes earlier in the batch survive.
            for event, fields in copied:
                if event.entity is Entity.OBSERVATION:
                    self._forget_earlier_run(event, fields)
            for event, fields in copied:
                if event.entity is Entity.OBSERVATION:
                    self._write_observation(event, fields, touched)
                elif event.entity is Entity.TRACE:
                    merge_fields(self._trace(event.id, event.project, touched).fields, fields)
                else:
                    self._write_score(event, fields, touched)
            for trace_id in touched:
                if trace_id in self._traces:
                    _recompute(self._traces[trace_id], self._observations)
            self._evict()

    def _trace(self, trace_id: str, project: str, touched: dict[str, None]) -> _Trace:
        record = self._traces.get(trace_id)
        if record is None:
            self._created += 1
            record = self._traces[trace_id] = _Trace(trace_id, project, self._created)
        else:
            self._traces.move_to_end(trace_id)
        touched[trace_id] = None
        return record

    def _write_observation(
        self, event: Event, fields: dict[str, Any], touched: dict[str, None]
    ) -> None:
        record = self._observations.get(event.id)
        if record is not None and record.trace_id != event.trace_id:
            self._drop_observation(record)  # the id now belongs to another trace
            record = None
        trace = self._trace(event.trace_id, event.project, touched)
        if record is None:
            record = self._observations[event.id] = _Obs(event.id, event.trace_id)
            trace.observations[event.id] = None
        merge_fields(record.fields, fields)
        self._price(record, fields)

    def _forget_earlier_run(self, event: Event, fields: dict[str, Any]) -> None:
        """An ended observation started again is a new run of that id: drop the old run (the
        whole trace when it was the trace's root)."""
        record = self._observations.get(event.id)
        if record is None or not _is_rerun(record, fields):
            return
        if (
            record.trace_id == event.trace_id
            and record.fields.get("parent_id") is None
            and fields.get("parent_id") is None
        ):
            self._drop_trace(record.trace_id)
        else:
            self._drop_observation(record)

    def _price(self, record: _Obs, fields: dict[str, Any]) -> None:
        """Client cost wins; otherwise cost follows the current model and usage."""
        if fields.get("cost"):
            record.cost_source = "client"
            return
        if record.cost_source == "client":
            return
        if "model" in fields or "usage" in fields:
            f = record.fields
            cost = self.prices.cost(f.get("model"), f.get("usage"))
            if cost:
                f["cost"], record.cost_source = cost, "auto"

    def _write_score(self, event: Event, fields: dict[str, Any], touched: dict[str, None]) -> None:
        trace_id = event.trace_id or None
        record = self._scores.get(event.id)
        if record is None:
            record = self._scores[event.id] = _Score(event.id, trace_id, event.project)
            if trace_id is None:
                self._loose_scores[event.id] = None
        if trace_id is not None:
            self._trace(trace_id, event.project, touched).scores[event.id] = None
        merge_fields(record.fields, fields)

    def _drop_observation(self, record: _Obs) -> None:
        self._observations.pop(record.id, None)
        trace = self._traces.get(record.trace_id)
        if trace is not None:
            trace.observations.pop(record.id, None)
            _recompute(trace, self._observations)

    def _drop_trace(self, trace_id: str) -> bool:
        record = self._traces.pop(trace_id, None)
        if record is None:
            return False
        for obs_id in record.observations:
            self._observations.pop(obs_id, None)
        for score_id in record.scores:
            self._scores.pop(score_id, None)
        for media_id in [m.id for m in self._media.values() if m.trace_id == trace_id]:
            del self._media[media_id]
        return True

    def _evict(self) -> None:
        while len(self._traces) > self.max_traces:
            self._drop_trace(next(iter(self._traces)))
        _trim(self._loose_scores, self.max_traces, self._scores.pop)
        _trim(self._media, self.max_traces, None)

    # ------------------------------------------------------------------ extra lookups

    def latest_trace(self, project: str | None = None) -> TraceDetail | None:
        """The trace created (or re-run) last, in ``project`` if given."""
        with self._lock:
            self._check()
            candidates = [
                t for t in self._traces.values() if project is None or t.project == project
            ]
            if not candidates:
                return None
            return self._detail(max(candidates, key=lambda t: t.created))

    def trace_for_run(self, run_id: str) -> TraceDetail | None:
        """The trace holding the observation (LangChain run) ``run_id``, as last written."""
        with self._lock:
            self._check()
            record = self._observations.get(run_id)
            trace = self._traces.get(record.trace_id) if record is not None else None
            return self._detail(trace) if trace is not None else None

    # ------------------------------------------------------------------ reads

    def get_trace(self, trace_id: str) -> TraceDetail | None:
        with self._lock:
            self._check()
            record = self._traces.get(trace_id)
            return self._detail(record) if record is not None else None

    def _detail(self, record: _Trace) -> TraceDetail:
        observations = sorted(
            (self._observations[o] for o in record.observations),
            key=lambda o: _nulls_first(o.fields.get("start_time"), o.id),
        )
        scores = sorted(
            (self._scores[s] for s in record.scores),
            key=lambda s: _nulls_first(s.fields.get("timestamp"), s.id),
        )
        return TraceDetail(
            **_trace_fields(record),
            scores=[_score(s) for s in scores],
            observations=[_observation(o) for o in observations],
        )

    def get_observation(self, observation_id: str) -> Observation | None:
        with self._lock:
            self._check()
            record = self._observations.get(observation_id)
            return _observation(record) if record is not None else None

    def list_traces(self, query: TraceQuery) -> Page[Trace]:
        with self._lock:
            self._check()
            matched = self._matching(query)
            column = convert.SORT_COLUMNS[query.sort]
            keyed = sorted((((getattr(t, column), t.id), t) for t in matched), key=lambda kt: kt[0])
            if query.descending:
                keyed.reverse()
            if query.cursor:
                after = tuple(decode_cursor(query.cursor, 2))
                if query.descending:
                    keyed = [(k, t) for k, t in keyed if k < after]
                else:
                    keyed = [(k, t) for k, t in keyed if k > after]
            page = keyed[: query.limit]
            more = len(keyed) > query.limit
            traces = [Trace(**_trace_fields(t)) for _, t in page]
            cursor = encode_cursor(list(page[-1][0])) if more else None
            return Page[Trace](data=traces, next_cursor=cursor)

    def _matching(self, q: TraceQuery) -> list[_Trace]:
        tests: list[Callable[[_Trace], bool]] = []
        if q.project is not None:
            tests.append(lambda t: t.project == q.project)
        if q.name:
            needle = q.name.lower()
            tests.append(lambda t: needle in (t.fields.get("name") or "").lower())
        if q.user_id is not None:
            tests.append(lambda t: t.fields.get("user_id") == q.user_id)
        if q.session_id is not None:
            tests.append(lambda t: t.fields.get("session_id") == q.session_id)
        if q.tags:
            tests.append(lambda t: set(q.tags) <= set(t.fields.get("tags") or ()))
        if q.status is not None:
            tests.append(lambda t: t.status is q.status)
        if q.level is not None:
            level = q.level.value
            tests.append(lambda t: t.level_counts.get(level, 0) > 0)
        if q.start_after is not None:
            after = datetime_to_ns(q.start_after)
            tests.append(lambda t: t.start_ns >= after)
        if q.start_before is not None:
            before = datetime_to_ns(q.start_before)
            tests.append(lambda t: t.start_ns < before)
        if q.min_latency_ms is not None:
            tests.append(lambda t: t.latency_ms >= q.min_latency_ms)  # type: ignore[operator]
        if q.max_latency_ms is not None:
            tests.append(lambda t: t.latency_ms <= q.max_latency_ms)  # type: ignore[operator]
        if q.min_cost is not None:
            tests.append(lambda t: t.total_cost >= q.min_cost)  # type: ignore[operator]
        if q.model is not None:
            tests.append(
                lambda t: any(
                    self._observations[o].fields.get("model") == q.model for o in t.observations
                )
            )
        if q.prompt_name is not None:
            link = (q.prompt_name, q.prompt_version)
            tests.append(lambda t: any(self._names_prompt(o, *link) for o in t.observations))
        if q.metadata:
            wanted = dict(q.metadata)
            tests.append(lambda t: _metadata_matches(t, wanted))
        if q.text:
            needle = q.text.lower()
            tests.append(lambda t: _contains_text(t, needle))
        return [t for t in self._traces.values() if all(test(t) for test in tests)]

    def _names_prompt(
        self, obs_id: str, name: str, version: int | None, *, exactly: bool = False
    ) -> bool:
        """Does the observation name prompt ``name`` in ``version``? (``None``: in any
        version, or with ``exactly``: with no version.)"""
        fields = self._observations[obs_id].fields
        if fields.get("prompt_name") != name:
            return False
        return (version is None and not exactly) or fields.get("prompt_version") == version

    def _level(self, obs_id: str) -> str:
        level = self._observations[obs_id].fields.get("level")
        return str(getattr(level, "value", level) or "DEFAULT")

    def list_sessions(
        self, project: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page[SessionSummary]:
        with self._lock:
            self._check()
            groups = self._groups("session_id", project)
            rows = []
            for session_id, traces in groups.items():
                rows.append(
                    (
                        (max(t.start_ns for t in traces), session_id),
                        SessionSummary(
                            id=session_id,
                            project=min(t.project for t in traces),
                            trace_count=len(traces),
                            user_ids=sorted(_present(traces, "user_id")),
                            start_time=_time(min(t.start_ns for t in traces)),
                            end_time=_time(max(t.end_ns for t in traces)),
                            total_tokens=sum(t.total_tokens for t in traces),
                            total_cost=sum(t.total_cost for t in traces),
                            error_count=sum(1 for t in traces if t.error_count),
                        ),
                    )
                )
            data, next_cursor = _page(rows, limit, cursor)
            return Page[SessionSummary](data=data, next_cursor=next_cursor)

    def get_session(self, session_id: str, project: str | None = None) -> SessionDetail | None:
        query: TraceQuery | None = convert.session_query(session_id, project)
        traces: list[Trace] = []
        while query is not None:
            page = self.list_traces(query)
            traces.extend(page.data)
            query = query.model_copy(update={"cursor": page.next_cursor})
            if page.next_cursor is None:
                query = None
        return convert.session_detail(session_id, traces)

    def list_users(
        self, project: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page[UserSummary]:
        with self._lock:
            self._check()
            rows = []
            for user_id, traces in self._groups("user_id", project).items():
                last = max(t.start_ns for t in traces)
                rows.append(
                    (
                        (last, user_id),
                        UserSummary(
                            id=user_id,
                            project=min(t.project for t in traces),
                            trace_count=len(traces),
                            session_count=len(
                                {
                                    t.fields["session_id"]
                                    for t in traces
                                    if t.fields.get("session_id")
                                }
                            ),
                            first_seen=ns_to_datetime(min(t.start_ns for t in traces)),
                            last_seen=ns_to_datetime(last),
                            total_tokens=sum(t.total_tokens for t in traces),
                            total_cost=sum(t.total_cost for t in traces),
                            error_count=sum(1 for t in traces if t.error_count),
                        ),
                    )
                )
            data, next_cursor = _page(rows, limit, cursor)
            return Page[UserSummary](data=data, next_cursor=next_cursor)

    def _groups(self, key: str, project: str | None) -> dict[str, list[_Trace]]:
        groups: dict[str, list[_Trace]] = {}
        for t in self._traces.values():
            value = t.fields.get(key)
            if value is not None and (project is None or t.project == project):
                groups.setdefault(value, []).append(t)
        return groups

    def list_scores(
        self,
        trace_id: str | None = None,
        name: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Score]:
        with self._lock:
            self._check()
            rows = [
                ((s.fields.get("timestamp") or 0, s.id), _score(s))
                for s in self._scores.values()
                if (trace_id is None or s.trace_id == trace_id)
                and (name is None or (s.fields.get("name") or "score") == name)
            ]
            data, next_cursor = _page(rows, limit, cursor)
            return Page[Score](data=data, next_cursor=next_cursor)

    def timeseries(self, query: TimeseriesQuery) -> list[TimeseriesPoint]:
        start, end = datetime_to_ns(query.start), datetime_to_ns(query.end)
        interval = query.interval_s * 1_000_000_000
        with self._lock:
            self._check()
            # (bucket, group) → [trace ids, observations, errors, latencies, tokens, cost]
            acc: dict[tuple[int, str | None], _Bucket] = {}
            for t in self._traces.values():
                if not start <= t.start_ns < end:
                    continue
                if query.project is not None and t.project != query.project:
                    continue
                bucket = (t.start_ns - start) // interval
                if query.group_by is TimeseriesGroup.MODEL:
                    for obs_id in t.observations:
                        f = self._observations[obs_id].fields
                        if f.get("model") is None:
                            continue
                        b = acc.setdefault((bucket, f["model"]), _Bucket())
                        b.traces.add(t.id)
                        b.observations += 1
                        b.errors += self._level(obs_id) == "ERROR"
                        if f.get("start_time") is not None and f.get("end_time") is not None:
                            b.latencies.append((f["end_time"] - f["start_time"]) / 1e6)
                        b.tokens += usage_total(f.get("usage")) or 0
                        b.cost += cost_total(f.get("cost")) or 0
                    continue
                group = t.fields.get("name") if query.group_by is TimeseriesGroup.NAME else None
                b = acc.setdefault((bucket, group), _Bucket())
                b.traces.add(t.id)
                b.observations += t.observation_count
                b.errors += t.error_count
                if t.status is not TraceStatus.RUNNING:
                    b.latencies.append(t.latency_ms)
                b.tokens += t.total_tokens
                b.cost += t.total_cost
        points = []
        for (bucket, group), b in sorted(acc.items(), key=lambda kv: _nulls_first(*kv[0])):
            b.latencies.sort()
            points.append(
                TimeseriesPoint(
                    bucket_start=ns_to_datetime(start + bucket * interval),
                    group=group,
                    traces=len(b.traces),
                    observations=b.observations,
                    errors=b.errors,
                    latency_p50_ms=_nearest_rank(b.latencies, 0.5),
                    latency_p95_ms=_nearest_rank(b.latencies, 0.95),
                    total_tokens=b.tokens,
                    total_cost=b.cost,
                )
            )
        return points

    # ------------------------------------------------------------------ deletes and sizes

    def delete_traces(self, trace_ids: Sequence[str]) -> int:
        with self._lock:
            self._check()
            return sum(self._drop_trace(t) for t in dict.fromkeys(trace_ids))

    def delete_where(self, query: TraceQuery) -> int:
        with self._lock:
            self._check()
            return self.delete_traces([t.id for t in self._matching(query)])

    def prune(self, max_traces: int | None = None, older_than: datetime | None = None) -> int:
        with self._lock:
            self._check()
            by_age = sorted(self._traces.values(), key=lambda t: (t.start_ns, t.id))
            doomed: list[str] = []
            if older_than is not None:
                cutoff = datetime_to_ns(older_than)
                doomed = [t.id for t in by_age if t.start_ns < cutoff]
            if max_traces is not None:
                excess = len(by_age) - max_traces
                doomed.extend(t.id for t in by_age[: max(excess, 0)])
            return self.delete_traces(doomed)

    def counts(self) -> StoreCounts:
        with self._lock:
            self._check()
            return StoreCounts(
                backend=self.backend,
                traces=len(self._traces),
                observations=len(self._observations),
                scores=len(self._scores),
                size_bytes=0,
                location="memory",
                extra={"max_traces": self.max_traces},
            )

    # ------------------------------------------------------------------ prompts and media

    def save_prompt(
        self,
        project: str,
        name: str,
        prompt: Any,
        *,
        type: str = "text",
        config: dict[str, Any] | None = None,
        labels: Sequence[str] = (),
        tags: Sequence[str] = (),
        commit_message: str | None = None,
    ) -> Prompt:
        with self._lock:
            self._check()
            versions = self._prompts.setdefault((project, name), {})
            existing = {v: p.labels for v, p in versions.items()}
            version, own_labels, changes = plan_new_version(existing, labels)
            self._relabel(versions, changes)
            versions[version] = Prompt(
                project=project,
                name=name,
                version=version,
                type=type,
                prompt=to_jsonable(prompt),
                config=to_jsonable(config or {}),
                labels=own_labels,
                tags=list(dict.fromkeys(tags)),
                commit_message=commit_message,
                created_at=ns_to_datetime(time.time_ns()),
            )
            return versions[version].model_copy(deep=True)

    def get_prompt(
        self, project: str, name: str, *, version: int | None = None, label: str | None = None
    ) -> Prompt | None:
        with self._lock:
            self._check()
            versions = self._prompts.get((project, name), {})
            if version is not None:
                found = versions.get(version)
            else:
                wanted = label or DEFAULT_LABEL
                found = next((p for p in versions.values() if wanted in p.labels), None)
            return found.model_copy(deep=True) if found is not None else None

    def list_prompts(self, project: str | None, name: str | None = None) -> list[Prompt]:
        with self._lock:
            self._check()
            return [
                p.model_copy(deep=True)
                for (proj, n), versions in sorted(self._prompts.items())
                if project in (None, proj) and name in (None, n)
                for _, p in sorted(versions.items())
            ]

    def prompt_usage(
        self, project: str | None, name: str | None = None, *, limit: int = 1000
    ) -> list[PromptUsage]:
        with self._lock:
            self._check()
            saved = [
                (proj, n, version)
                for (proj, n), versions in self._prompts.items()
                if project in (None, proj) and name in (None, n)
                for version in versions
            ]
            usage = []
            for key in usage_keys(saved):
                links = [
                    t.id
                    for t in self._traces.values()
                    if t.project == key[0]
                    for o in t.observations
                    if self._names_prompt(o, key[1], key[2], exactly=True)
                ][:limit]
                if links:
                    usage.append(PromptUsage(project=key[0], name=key[1], version=key[2],
                                             observations=len(links), traces=len(set(links)),
                                             capped=len(links) >= limit))  # fmt: skip
            return usage

    def set_prompt_labels(
        self, project: str, name: str, version: int, labels: Sequence[str]
    ) -> Prompt | None:
        with self._lock:
            self._check()
            versions = self._prompts.get((project, name), {})
            if version not in versions:
                return None
            existing = {v: p.labels for v, p in versions.items()}
            self._relabel(versions, plan_set_labels(existing, version, labels))
            return versions[version].model_copy(deep=True)

    @staticmethod
    def _relabel(versions: dict[int, Prompt], changes: dict[int, list[str]]) -> None:
        for v, new_labels in changes.items():
            versions[v] = versions[v].model_copy(update={"labels": new_labels})

    def save_media(self, media: MediaRecord) -> None:
        with self._lock:
            self._check()
            old = self._media.get(media.id)
            record = media.model_copy(deep=True)
            if old is not None:
                given = {k: v for k, v in record.model_dump().items() if v is not None}
                given.pop("created_at", None)
                record = old.model_copy(update=given)
            elif record.created_at is None:
                record = record.model_copy(update={"created_at": ns_to_datetime(time.time_ns())})
            self._media[media.id] = record
            self._media.move_to_end(media.id)
            _trim(self._media, self.max_traces, None)

    def get_media(self, media_id: str) -> MediaRecord | None:
        with self._lock:
            self._check()
            record = self._media.get(media_id)
            return record.model_copy(deep=True) if record is not None else None


# ---------------------------------------------------------------------- helpers


@dataclass
class _Bucket:
    traces: set[str] = field(default_factory=set)
    observations: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    tokens: float = 0.0
    cost: float = 0.0


def _copy_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """A detached copy of an event's fields, payloads as JSON-compatible values."""
    return {
        key: to_jsonable(value) if key in _JSON_FIELDS and value is not None else value
        for key, value in fields.items()
    }


def _is_rerun(record: _Obs, fields: dict[str, Any]) -> bool:
    """An ended observation started again (not a retried write of the same start)."""
    start = fields.get("start_time")
    return (
        start is not None
        and record.fields.get("end_time") is not None
        and record.fields.get("start_time") not in (None, start)
    )


def _recompute(t: _Trace, observations: dict[str, _Obs]) -> None:
    """The derived columns, exactly as the SQL stores' recompute statement sets them."""
    starts, lasts = [], []
    open_n = 0
    levels: dict[str, int] = {}
    tokens = cost = 0.0
    usage: dict[str, float] = {}
    for obs_id in t.observations:
        f = observations[obs_id].fields
        if f.get("start_time") is not None:
            starts.append(f["start_time"])
        last = f.get("end_time") if f.get("end_time") is not None else f.get("start_time")
        if last is not None:
            lasts.append(last)
        open_n += f.get("end_time") is None
        level = str(getattr(f.get("level"), "value", f.get("level")) or "DEFAULT")
        levels[level] = levels.get(level, 0) + 1
        tokens += usage_total(f.get("usage")) or 0
        cost += cost_total(f.get("cost")) or 0
        for bucket, amount in (f.get("usage") or {}).items():
            if isinstance(amount, (int, float)) and not isinstance(amount, bool):
                usage[bucket] = usage.get(bucket, 0.0) + amount
    if t.fields.get("start_time") is not None:
        starts.append(t.fields["start_time"])
    if t.fields.get("end_time") is not None:
        lasts.append(t.fields["end_time"])
    t.start_ns = min(starts, default=0)
    t.end_ns = max(lasts, default=0)
    t.latency_ms = max(t.end_ns - t.start_ns, 0) / 1e6 if t.start_ns and t.end_ns else 0.0
    err_n = levels.get("ERROR", 0)
    t.observation_count, t.error_count, t.level_counts = len(t.observations), err_n, levels
    t.total_tokens, t.total_cost, t.usage = tokens, cost, usage
    if t.fields.get("incomplete"):
        t.status = TraceStatus.INCOMPLETE
    elif open_n:
        t.status = TraceStatus.RUNNING
    elif err_n:
        t.status = TraceStatus.ERROR
    else:
        t.status = TraceStatus.OK


def _metadata_matches(t: _Trace, wanted: dict[str, str]) -> bool:
    metadata = t.fields.get("metadata") or {}
    return all(convert.metadata_text(metadata.get(k)) == v for k, v in wanted.items())


def _contains_text(t: _Trace, needle: str) -> bool:
    f = t.fields
    if needle in (f.get("name") or "").lower():
        return True
    return any(
        f.get(key) is not None and needle in convert.json_text(f[key]).lower()
        for key in ("input", "output")
    )


def _nulls_first(value: Any, tiebreak: Any) -> tuple[bool, Any, Any]:
    return (value is not None, value, tiebreak)


def _nearest_rank(sorted_values: list[float], p: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[math.ceil(p * len(sorted_values)) - 1]


def _page(rows: list[tuple[Any, K]], limit: int, cursor: str | None) -> tuple[list[K], str | None]:
    """Newest first by (sort value, id) keys, keyset-paged like the SQL stores."""
    rows.sort(key=lambda r: r[0], reverse=True)
    if cursor:
        after = tuple(decode_cursor(cursor, 2))
        rows = [r for r in rows if r[0] < after]
    page = rows[:limit]
    next_cursor = encode_cursor(list(page[-1][0])) if len(rows) > limit else None
    return [value for _, value in page], next_cursor


def _trim(ordered: OrderedDict[str, Any], bound: int, also: Callable[..., Any] | None) -> None:
    while len(ordered) > bound:
        key, _ = ordered.popitem(last=False)
        if also is not None:
            also(key, None)


def _trace_fields(t: _Trace) -> dict[str, Any]:
    f = copy.deepcopy(t.fields)
    return {
        "id": t.id,
        "project": t.project,
        "name": f.get("name"),
        "user_id": f.get("user_id"),
        "session_id": f.get("session_id"),
        "tags": f.get("tags") or [],
        "metadata": f.get("metadata") or {},
        "release": f.get("release"),
        "version": f.get("version"),
        "environment": f.get("environment"),
        "input": f.get("input"),
        "output": f.get("output"),
        "start_time": ns_to_datetime(t.start_ns) if t.start_ns else None,
        "end_time": ns_to_datetime(t.end_ns) if t.end_ns else None,
        "status": t.status,
        "latency_ms": t.latency_ms if t.start_ns and t.end_ns else None,
        "observation_count": t.observation_count,
        "error_count": t.error_count,
        "usage": dict(t.usage),
        "total_tokens": t.total_tokens,
        "total_cost": t.total_cost,
    }


def _observation(o: _Obs) -> Observation:
    f = copy.deepcopy(o.fields)
    start, end, first = f.get("start_time"), f.get("end_time"), f.get("completion_start_time")
    return Observation(
        id=o.id,
        trace_id=o.trace_id,
        parent_id=f.get("parent_id"),
        type=ObservationType(_value(f.get("type")) or "span"),
        name=f.get("name"),
        start_time=ns_to_datetime(start),
        end_time=ns_to_datetime(end),
        level=Level(_value(f.get("level")) or "DEFAULT"),
        status_message=f.get("status_message"),
        input=f.get("input"),
        output=f.get("output"),
        metadata=f.get("metadata") or {},
        model=f.get("model"),
        model_parameters=f.get("model_parameters"),
        usage=f.get("usage") or {},
        cost=f.get("cost") or {},
        completion_start_time=ns_to_datetime(first),
        prompt_name=f.get("prompt_name"),
        prompt_version=f.get("prompt_version"),
        latency_ms=(end - start) / 1e6 if start is not None and end is not None else None,
        time_to_first_token_ms=(
            (first - start) / 1e6 if start is not None and first is not None else None
        ),
    )


def _score(s: _Score) -> Score:
    f = copy.deepcopy(s.fields)
    return Score(
        id=s.id,
        trace_id=s.trace_id,
        observation_id=f.get("observation_id"),
        session_id=f.get("session_id"),
        project=s.project,
        name=f.get("name") or "score",
        value=f.get("value"),
        string_value=f.get("string_value"),
        data_type=ScoreDataType(_value(f.get("data_type")) or "numeric"),
        source=ScoreSource(_value(f.get("source")) or "api"),
        comment=f.get("comment"),
        metadata=f.get("metadata") or {},
        timestamp=ns_to_datetime(f.get("timestamp")),
    )


def _present(traces: list[_Trace], key: str) -> set[str]:
    return {t.fields[key] for t in traces if t.fields.get(key)}


def _time(ns: int) -> datetime | None:
    return ns_to_datetime(ns) if ns else None


def _value(value: Any) -> Any:
    return getattr(value, "value", value)

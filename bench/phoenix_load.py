"""Load server_query.py's data set into a Phoenix SQLite database through Phoenix's own code.

Runs with the Python of Phoenix's venv (``phoenix_query.py`` starts it). Each trace of
``_query_dataset`` becomes OTLP protobuf spans with OpenInference attributes, exactly as an
instrumented app would send them; each span then goes through the same code as a span that
arrives on Phoenix's ``/v1/traces``: ``phoenix.trace.otel.decode_otlp_span`` and Phoenix's
``BulkInserter`` (``insert_span``: trace, project and session rows, cumulative counts; and the
span cost calculator with its built-in price table). What is left out is only the HTTP request
and Phoenix's queue cap: the spans are handed to the inserter in-process, which takes the
ingest route's per-request overhead (and its ~100 spans/s) out of loading 1,000,000 spans.
The only setting changed is the inserter's transaction size (``--spans-per-transaction``,
Phoenix's default is 100): fewer commits, the same rows.

    .cache/phoenix-venv/bin/python bench/phoenix_load.py --db D/phoenix.db --traces 200000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from _query_dataset import BIG_TRACE_ID, BIG_TRACE_SPANS, TraceRecord, big_trace_start, traces
from openinference.semconv.trace import SpanAttributes
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OtlpSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status
from phoenix.db import models
from phoenix.db.bulk_inserter import BulkInserter
from phoenix.db.engines import _dumps as phoenix_json_dumps
from phoenix.db.engines import create_engine
from phoenix.db.facilitator import Facilitator
from phoenix.db.helpers import random_project_gradient
from phoenix.db.insertion.helpers import should_calculate_span_cost
from phoenix.server.cost_tracking.span_cost_calculator import SpanCostCalculator
from phoenix.server.daemons.generative_model_store import GenerativeModelStore
from phoenix.server.types import DbSessionFactory
from phoenix.trace.attributes import get_attribute_value
from phoenix.trace.otel import decode_otlp_span
from phoenix.trace.schemas import Span, SpanKind, SpanStatusCode
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

KINDS = {"GENERATION": "LLM", "TOOL": "TOOL", "RETRIEVER": "RETRIEVER"}


def _value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[_value(v) for v in value]))
    return AnyValue(string_value=str(value))


def otlp_span(
    trace_id: str,
    span_id: int,
    parent_id: int | None,
    name: str,
    start_ns: int,
    end_ns: int,
    attributes: dict[str, Any],
    error: str | None = None,
) -> OtlpSpan:
    span = OtlpSpan(
        trace_id=bytes.fromhex(trace_id),
        span_id=span_id.to_bytes(8, "big"),
        name=name,
        kind=OtlpSpan.SPAN_KIND_INTERNAL,
        start_time_unix_nano=start_ns,
        end_time_unix_nano=end_ns,
        attributes=[KeyValue(key=k, value=_value(v)) for k, v in attributes.items()],
    )
    if parent_id is not None:
        span.parent_span_id = parent_id.to_bytes(8, "big")
    if error is not None:
        span.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message=error))
    return span


def _json_io(prefix: str, value: Any) -> dict[str, Any]:
    return {f"{prefix}.value": json.dumps(value), f"{prefix}.mime_type": "application/json"}


def _llm(model: str, prompt: int, completion: int) -> dict[str, Any]:
    return {
        "llm.model_name": model,
        "llm.token_count.prompt": prompt,
        "llm.token_count.completion": completion,
        "llm.token_count.total": prompt + completion,
    }


def trace_spans(record: TraceRecord) -> list[OtlpSpan]:
    """One trace of the data set as an OpenInference-instrumented app would export it."""
    root_id = record.index * 8 + 1
    root = otlp_span(
        record.trace_id, root_id, None, record.name, record.start_ns, record.end_ns,
        {"openinference.span.kind": "CHAIN", "user.id": record.user_id,
         "session.id": record.session_id, "tag.tags": record.tags,
         "metadata": json.dumps(record.metadata),
         **_json_io("input", record.input), **_json_io("output", record.output)},
    )  # fmt: skip
    spans = [root]
    for k, child in enumerate(record.children):
        attributes: dict[str, Any] = {"openinference.span.kind": KINDS[child.kind]}
        if child.usage is not None and child.model is not None:
            attributes.update(_llm(child.model, child.usage["input"], child.usage["output"]))
            attributes.update(_json_io("input", [{"role": "user", "content": "hi"}]))
            attributes.update({"llm.input_messages.0.message.role": "user",
                               "llm.input_messages.0.message.content": "hi",
                               "output.value": "ok"})  # fmt: skip
        spans.append(
            otlp_span(record.trace_id, root_id + 1 + k, root_id, child.name, child.start_ns,
                      child.end_ns, attributes, "tool failed" if child.error else None)
        )  # fmt: skip
    return spans


def big_trace_spans(now_ns: int) -> list[OtlpSpan]:
    """The 1,000-span trace: one root, 999 children, every third an LLM span."""
    start = big_trace_start(now_ns)
    root_id = 1 << 60
    spans = []
    for k in range(BIG_TRACE_SPANS):
        llm = k % 3 == 0
        attributes: dict[str, Any] = {"openinference.span.kind": "LLM" if llm else "CHAIN"}
        if llm:
            attributes.update(_llm("gpt-4o-mini", 10, 5))
        attributes.update(_json_io("input", {"k": k, "text": "x" * 200}))
        attributes.update(_json_io("output", {"ok": True}))
        spans.append(
            otlp_span(BIG_TRACE_ID, root_id + k, None if k == 0 else root_id, f"step-{k}",
                      start + k * 10**6, start + (k + 1) * 10**6, attributes)
        )  # fmt: skip
    return spans


def dataset(count: int, now_ns: int) -> Iterator[tuple[Span, str]]:
    """(decoded span, project name) in load order, decoded as Phoenix's OTLP route does."""
    for record in traces(count, now_ns):
        for span in trace_spans(record):
            yield decode_otlp_span(span), record.project
    for span in big_trace_spans(now_ns):
        yield decode_otlp_span(span), "main"


class _NoEvents:
    """The inserter's DML event sink: the server uses it to invalidate caches; none here."""

    def put(self, item: Any) -> None:
        pass


@contextlib.asynccontextmanager
async def _session_factory(path: Path) -> AsyncIterator[DbSessionFactory]:
    engine = create_engine(f"sqlite:///{path}", migrate=True, log_migrations=False)
    from sqlalchemy.ext.asyncio import async_sessionmaker

    maker = async_sessionmaker(engine, expire_on_commit=False)

    @contextlib.asynccontextmanager
    async def session() -> AsyncIterator[Any]:
        async with maker.begin() as s:
            yield s

    try:
        yield DbSessionFactory(db=session, dialect=engine.dialect.name)
    finally:
        await engine.dispose()


async def _wait_for_price_table(models: GenerativeModelStore) -> None:
    """The store fetches its models in the background; costs need them loaded first."""
    probe = {"llm": {"model_name": "gpt-4o-mini"}}
    for _ in range(600):
        if models.find_model(datetime.now(timezone.utc), probe) is not None:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("Phoenix's price table did not load in 30 s")


@contextlib.asynccontextmanager
async def _phoenix_db(path: Path) -> AsyncIterator[tuple[DbSessionFactory, SpanCostCalculator]]:
    """The database as `phoenix serve` leaves it at start (migrations, seeded rows such as
    the price table), and the span cost calculator the server builds on it."""
    async with _session_factory(path) as db:
        await Facilitator(db=db)()
        models = GenerativeModelStore(db)
        await models.start()
        try:
            await _wait_for_price_table(models)
            yield db, SpanCostCalculator(models)
        finally:
            await models.stop()


async def load_with_inserter(path: Path, count: int, per_transaction: int, now_ns: int) -> int:
    """The reference route: every span through Phoenix's BulkInserter (slow: ~30-100/s)."""
    async with _phoenix_db(path) as (db, calculator):
        inserter = BulkInserter(
            db,
            event_queue=_NoEvents(),
            span_cost_calculator=calculator,
            max_ops_per_transaction=per_transaction,
            max_spans_queue_size=4 * per_transaction,
            shutdown_drain_sec=3600,
        )
        sent = 0
        async with inserter as (_, enqueue_span, _):
            for span, project in dataset(count, now_ns):
                while inserter.is_full:
                    await asyncio.sleep(0.01)
                await enqueue_span(span, project)
                sent += 1
        return sent


class RowWriter:
    """The rows insert_span and the cost calculator would leave, written with executemany.

    Same tables, same SQLAlchemy column types (so the same JSON and timestamp encoding), ids
    assigned in arrival order as SQLite's rowid would be; cumulative counts are the sums over
    each span's subtree, which is what insert_span's propagation converges to. ``--check``
    compares this route with the BulkInserter route table by table.
    """

    def __init__(self, path: Path, calculator: SpanCostCalculator) -> None:
        # Phoenix's own JSON encoder (orjson, compact), as its engines are configured.
        self.engine = sa.create_engine(f"sqlite:///{path}", json_serializer=phoenix_json_dumps)
        self.calculator = calculator
        with self.engine.connect() as conn:
            self.projects: dict[str, int] = {
                name: rowid
                for name, rowid in conn.execute(sa.select(models.Project.name, models.Project.id))
            }
            self.next_id = {
                table: (conn.scalar(sa.select(sa.func.max(table.id))) or 0) + 1
                for table in (models.Project, models.Trace, models.ProjectSession, models.Span,
                              models.SpanCost, models.SpanCostDetail)
            }  # fmt: skip
        self.traces: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}  # by session_id
        self.session_rows: dict[int, dict[str, Any]] = {}  # the same, by rowid

    def _id(self, table: Any) -> int:
        value = self.next_id[table]
        self.next_id[table] = value + 1
        return value

    def write(self, spans: list[tuple[Span, str]]) -> None:
        """One batch of whole traces (a trace never spans two batches)."""
        new_projects, span_rows, cost_rows, detail_rows = [], [], [], []
        by_trace: dict[str, list[Span]] = {}
        for span, project in spans:
            if project not in self.projects:
                self.projects[project] = self._id(models.Project)
                new_projects.append({"id": self.projects[project], "name": project,
                                     **random_project_gradient()})  # fmt: skip
            trace_id = span.context.trace_id
            trace = self.traces.get(trace_id)
            if trace is None:
                trace = self.traces[trace_id] = {
                    "id": self._id(models.Trace), "trace_id": trace_id,
                    "project_rowid": self.projects[project], "start_time": span.start_time,
                    "end_time": span.end_time, "project_session_rowid": None}  # fmt: skip
            trace["start_time"] = min(trace["start_time"], span.start_time)
            trace["end_time"] = max(trace["end_time"], span.end_time)
            session_id = get_attribute_value(span.attributes, SpanAttributes.SESSION_ID)
            session_id = str(session_id).strip() if session_id is not None else ""
            if trace["project_session_rowid"] is None and session_id:
                if session_id not in self.sessions:
                    row = {"id": self._id(models.ProjectSession), "session_id": session_id,
                           "project_id": trace["project_rowid"], "start_time": trace["start_time"],
                           "end_time": trace["end_time"]}  # fmt: skip
                    self.sessions[session_id] = self.session_rows[row["id"]] = row
                trace["project_session_rowid"] = self.sessions[session_id]["id"]
            by_trace.setdefault(trace_id, []).append(span)
        for trace_id, members in by_trace.items():
            trace = self.traces[trace_id]
            rows = [self._span_row(span, trace["id"]) for span in members]
            self._accumulate(rows)
            span_rows.extend(rows)
            for span, row in zip(members, rows, strict=True):
                if should_calculate_span_cost(span.attributes) and (
                    cost := self.calculator.calculate_cost(span.start_time, span.attributes)
                ):
                    cost_id = self._id(models.SpanCost)
                    ids = {"id": cost_id, "span_rowid": row["id"], "trace_rowid": trace["id"]}
                    cost_rows.append({**_columns_of(cost, models.SpanCost), **ids})
                    for detail in cost.span_cost_details:
                        detail_rows.append({**_columns_of(detail, models.SpanCostDetail),
                                            "id": self._id(models.SpanCostDetail),
                                            "span_cost_id": cost_id})  # fmt: skip
            if (sid := trace["project_session_rowid"]) is not None:
                session = self.session_rows[sid]
                session["start_time"] = min(session["start_time"], trace["start_time"])
                session["end_time"] = max(session["end_time"], trace["end_time"])
        batch_traces = [self.traces.pop(t) for t in by_trace]
        batch_sessions = {t["project_session_rowid"] for t in batch_traces} - {None}
        with self.engine.begin() as conn:
            if new_projects:
                conn.execute(sa.insert(models.Project), new_projects)
            upsert = sqlite_insert(models.ProjectSession)
            sessions = [self.session_rows[i] for i in sorted(batch_sessions)]
            if sessions:
                conn.execute(upsert.on_conflict_do_update(
                    index_elements=["id"],
                    set_={"start_time": sa.func.min(upsert.excluded.start_time,
                                                    models.ProjectSession.start_time),
                          "end_time": sa.func.max(upsert.excluded.end_time,
                                                  models.ProjectSession.end_time)}),
                    sessions)  # fmt: skip
            conn.execute(sa.insert(models.Trace), batch_traces)
            conn.execute(sa.insert(models.Span), span_rows)
            if cost_rows:
                conn.execute(sa.insert(models.SpanCost), cost_rows)
                conn.execute(sa.insert(models.SpanCostDetail), detail_rows)

    def _span_row(self, span: Span, trace_rowid: int) -> dict[str, Any]:
        prompt = completion = None
        if span.span_kind is SpanKind.LLM:
            attributes = span.attributes
            prompt = _int(get_attribute_value(attributes, SpanAttributes.LLM_TOKEN_COUNT_PROMPT))
            completion = _int(
                get_attribute_value(attributes, SpanAttributes.LLM_TOKEN_COUNT_COMPLETION)
            )
        return {
            "id": self._id(models.Span), "span_id": span.context.span_id,
            "trace_rowid": trace_rowid, "parent_id": span.parent_id,
            "span_kind": span.span_kind.value, "name": span.name,
            "start_time": span.start_time, "end_time": span.end_time,
            "attributes": span.attributes, "events": [asdict(e) for e in span.events],
            "status_code": span.status_code.value, "status_message": span.status_message,
            "cumulative_error_count": int(span.status_code is SpanStatusCode.ERROR),
            "cumulative_llm_token_count_prompt": prompt or 0,
            "cumulative_llm_token_count_completion": completion or 0,
            "llm_token_count_prompt": prompt, "llm_token_count_completion": completion,
        }  # fmt: skip

    @staticmethod
    def _accumulate(rows: list[dict[str, Any]]) -> None:
        """Add every span's own counts to each of its ancestors (the trace's rows only)."""
        by_span = {row["span_id"]: row for row in rows}
        keys = ("cumulative_error_count", "cumulative_llm_token_count_prompt",
                "cumulative_llm_token_count_completion")  # fmt: skip
        own = {row["span_id"]: [row[k] for k in keys] for row in rows}
        for row in rows:
            parent = by_span.get(row["parent_id"])
            while parent is not None:
                for key, value in zip(keys, own[row["span_id"]], strict=True):
                    parent[key] += value
                parent = by_span.get(parent["parent_id"])


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except BaseException:
        return 0


def _columns_of(record: Any, table: Any) -> dict[str, Any]:
    skip = {"id", "span_rowid", "trace_rowid", "span_cost_id"}
    return {c.key: getattr(record, c.key) for c in table.__table__.columns if c.key not in skip}


async def load_with_sql(path: Path, count: int, per_transaction: int, now_ns: int) -> int:
    """The fast route: Phoenix's decoding and cost calculator, rows written in batches."""
    async with _phoenix_db(path) as (_, calculator):
        writer = RowWriter(path, calculator)
        batch: list[tuple[Span, str]] = []
        sent = 0
        started = time.monotonic()
        last_trace = None
        for span, project in dataset(count, now_ns):
            if len(batch) >= per_transaction and span.context.trace_id != last_trace:
                writer.write(batch)
                batch = []
            batch.append((span, project))
            last_trace = span.context.trace_id
            sent += 1
            if sent % 100_000 == 0:
                rate = sent / (time.monotonic() - started)
                print(f"  phoenix: {sent:,} spans written ({rate:,.0f}/s)",
                      file=sys.stderr, flush=True)  # fmt: skip
        if batch:
            writer.write(batch)
        writer.engine.dispose()
        return sent


CHECKED_TABLES = {
    "projects": "id, name, description",
    "traces": "*",
    "project_sessions": "*",
    "spans": "*",
    "span_costs": "*",
    "span_cost_details": "*",
}


def _rows(conn: sqlite3.Connection, query: str) -> list[tuple[Any, ...]]:
    """Rows with JSON text parsed: Phoenix's attribute dicts come out of decode_otlp_span in
    an order that changes with the process's hash seed, so the text differs, not the value."""

    def parsed(value: Any) -> Any:
        if isinstance(value, str) and value[:1] in "{[":
            with contextlib.suppress(ValueError):
                return json.loads(value)
        return value

    return [tuple(parsed(v) for v in row) for row in conn.execute(query)]


def compare(reference: Path, fast: Path) -> list[str]:
    """Tables that differ between the two databases (empty: the routes give the same rows)."""
    differ = []
    with sqlite3.connect(reference) as a, sqlite3.connect(fast) as b:
        for table, columns in CHECKED_TABLES.items():
            query = f"SELECT {columns} FROM {table} ORDER BY id"
            rows_a, rows_b = _rows(a, query), _rows(b, query)
            if rows_a != rows_b:
                pairs = zip([*rows_a, None], [*rows_b, None], strict=False)
                first = next((x, y) for x, y in pairs if x != y)
                differ.append(f"{table}: {len(rows_a)} vs {len(rows_b)} rows, first diff {first}")
            else:
                print(f"  {table}: {len(rows_a)} rows identical", file=sys.stderr)
    return differ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--traces", type=int, default=200_000)
    parser.add_argument("--now-ns", type=int, default=time.time_ns())
    parser.add_argument("--via", choices=["sql", "inserter"], default="sql")
    parser.add_argument("--spans-per-transaction", type=int, default=5000)
    parser.add_argument("--check", type=Path, help="compare --db with this reference database")
    args = parser.parse_args()
    if args.check:
        differ = compare(args.check, args.db)
        print(json.dumps({"identical": not differ, "differ": differ}))
        return
    loader = load_with_sql if args.via == "sql" else load_with_inserter
    started = time.perf_counter()
    sent = asyncio.run(loader(args.db, args.traces, args.spans_per_transaction, args.now_ns))
    elapsed = time.perf_counter() - started
    print(json.dumps({"spans": sent, "seconds": elapsed}))


if __name__ == "__main__":
    main()

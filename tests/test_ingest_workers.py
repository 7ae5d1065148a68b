"""OTLP ingestion in worker processes (``traceyard serve --ingest-workers``): the real CLI
over loopback, the real pool against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from store_contract import pg_schema

from traceyard.config import load_settings
from traceyard.errors import ConfigError
from traceyard.ingest.otlp import OtlpDecodeError
from traceyard.model import ObservationType
from traceyard.server.ingest_workers import (
    IngestWorkers,
    WorkersBusy,
    WorkersUnavailable,
)
from traceyard.store.factory import open_store

PROTOBUF = "application/x-protobuf"
T0 = 1_764_000_000_000_000_000


def _agent_request(number: int, spans: int = 5) -> ExportTraceServiceRequest:
    """A trace ``number``: an agent root and ``spans - 1`` chat generations under it."""
    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    resource.resource.attributes.add(key="service.name", value=AnyValue(string_value="bot"))
    scope = resource.scope_spans.add()
    trace_id = number.to_bytes(16, "big")
    for index in range(spans):
        span = scope.spans.add(
            trace_id=trace_id, span_id=(number * 100 + index + 1).to_bytes(8, "big")
        )
        span.start_time_unix_nano = T0 + index
        span.end_time_unix_nano = T0 + 1_000_000
        if index == 0:
            span.name = f"agent {number}"
            span.attributes.add(key="user.id", value=AnyValue(string_value=f"user-{number}"))
            continue
        span.parent_span_id = (number * 100 + 1).to_bytes(8, "big")
        span.name = "chat"
        span.attributes.extend(
            [
                KeyValue(key="gen_ai.operation.name", value=AnyValue(string_value="chat")),
                KeyValue(key="gen_ai.request.model", value=AnyValue(string_value="gpt-4o-mini")),
                KeyValue(key="gen_ai.usage.input_tokens", value=AnyValue(int_value=100 + index)),
                KeyValue(key="gen_ai.usage.output_tokens", value=AnyValue(int_value=7)),
            ]
        )
    return request


def _span_id(number: int, index: int) -> str:
    return (number * 100 + index + 1).to_bytes(8, "big").hex()


# ------------------------------------------------------------------------------ the CLI


@contextmanager
def _serve(data_dir: Path, workers: int) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``traceyard serve --ingest-workers N`` on a free loopback port; stopped with Ctrl-C."""
    process = subprocess.Popen(
        [sys.executable, "-m", "traceyard.cli", "serve", "-d", str(data_dir), "--port", "0",
         "--ingest-workers", str(workers)],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        found = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
        assert found, f"serve printed no URL: {line!r}"
        url = found.group(1)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the app answers once its workers have started
            try:
                if httpx.get(url + "/api/public/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _worker_pids(pid: int) -> list[int]:
    """Children of ``pid`` that run multiprocessing's spawned-worker entry point."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(child) for child in (task / "children").read_text().split()]
    return [
        child
        for child in children
        if "spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace")
    ]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_serve_with_workers_answers_after_the_commit(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with _serve(data_dir, workers=2) as (url, process):
        assert len(_worker_pids(process.pid)) == 2
        with httpx.Client(base_url=url, timeout=30) as http:
            for number in range(1, 9):
                answer = http.post(
                    "/v1/traces",
                    content=_agent_request(number).SerializeToString(),
                    headers={"content-type": PROTOBUF},
                )
                assert answer.status_code == 200, answer.text
            # JSON encoding, and a request whose second span is bad: the good one is kept.
            partly_bad = {"resourceSpans": [{"scopeSpans": [{"spans": [
                {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "json span",
                 "startTimeUnixNano": str(T0), "endTimeUnixNano": str(T0 + 5)},
                {"traceId": "00" * 16, "spanId": "ef" * 8, "name": "zero trace id"},
            ]}]}]}  # fmt: skip
            answer = http.post("/v1/traces", json=partly_bad)
            assert answer.status_code == 200
            assert answer.json()["partialSuccess"]["rejectedSpans"] == 1
            garbage = http.post(
                "/v1/traces", content=b"\xff\x00", headers={"content-type": PROTOBUF}
            )
            assert garbage.status_code == 400
            assert "ExportTraceServiceRequest" in garbage.json()["message"]
            metrics = http.get("/metrics").text
        # 2xx means committed: read the file now, no waiting, from this process.
        store = open_store(load_settings(data_dir=data_dir))
        try:
            detail = store.get_trace((3).to_bytes(16, "big").hex())
            assert detail is not None
            assert detail.name == "agent 3" and detail.user_id == "user-3"
            chats = [o for o in detail.observations if o.name == "chat"]
            assert len(chats) == 4
            assert {o.parent_id for o in chats} == {_span_id(3, 0)}
            assert all(o.type is ObservationType.GENERATION for o in chats)
            assert sorted(o.usage["input"] for o in chats) == [101, 102, 103, 104]
            assert all(o.model == "gpt-4o-mini" and o.cost["total"] > 0 for o in chats)
            assert store.get_observation("cd" * 8) is not None
            assert store.get_observation("ef" * 8) is None
            assert store.counts().observations == 8 * 5 + 1
        finally:
            store.close()
        # 8 x (5 spans + the trace) + 1 span and its trace, counted by the server's process.
        assert "traceyard_ingest_events_accepted_total 50" in metrics
        assert "traceyard_ingest_events_rejected_invalid_total 1" in metrics
        workers = _worker_pids(process.pid)
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    for pid in workers:  # no worker outlives the server
        assert not Path(f"/proc/{pid}").exists() or "Z" in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0]
    except FileNotFoundError:
        return "gone"


# ------------------------------------------------------------------------------ the pool


def test_the_in_memory_store_cannot_have_workers() -> None:
    settings = load_settings(database_url="memory://", ingest_workers=2)
    with pytest.raises(ConfigError, match="TRACEYARD_INGEST_WORKERS"):
        IngestWorkers(settings)
    refused = subprocess.run(
        [sys.executable, "-m", "traceyard.cli", "serve", "--port", "0", "--ingest-workers", "2"],
        env={**os.environ, "TRACEYARD_DATABASE_URL": "memory://"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "in-memory store" in refused.stderr


async def test_requests_past_the_waiting_bound_are_refused_and_the_rest_written(
    tmp_path: Path,
) -> None:
    workers = IngestWorkers(load_settings(data_dir=tmp_path, ingest_workers=1))
    try:
        await asyncio.to_thread(workers.start)
        bodies = [_agent_request(number).SerializeToString() for number in range(1, 11)]
        outcomes = await asyncio.gather(
            *(workers.otlp(body, PROTOBUF, "default") for body in bodies), return_exceptions=True
        )
    finally:
        workers.close()
    written = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, WorkersBusy)]
    # 4 slots: the first 4 are taken; the rest are refused at once, unless the worker freed a
    # slot meanwhile (it needs a few ms a request; the 10 are submitted within about one).
    assert workers.max_pending == 4
    assert len(written) >= 4 and len(refused) >= 4 and len(written) + len(refused) == 10
    assert all(o.spans == 5 and o.events == 6 for o in written)
    store = open_store(load_settings(data_dir=tmp_path))
    try:
        assert store.counts().observations == len(written) * 5
    finally:
        store.close()


async def test_a_dead_worker_is_replaced(tmp_path: Path) -> None:
    workers = IngestWorkers(load_settings(data_dir=tmp_path, ingest_workers=1))
    try:
        await asyncio.to_thread(workers.start)
        pool = workers._pool
        for pid in list(pool._processes or {}):
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(WorkersUnavailable):
            for _ in range(100):  # until the pool has seen its worker die
                await workers.otlp(_agent_request(1).SerializeToString(), PROTOBUF, "default")
                await asyncio.sleep(0.05)
        assert workers._pool is not pool
        outcome = await workers.otlp(_agent_request(2).SerializeToString(), PROTOBUF, "default")
        assert outcome.spans == 5
        with pytest.raises(OtlpDecodeError):
            await workers.otlp(b"not protobuf", PROTOBUF, "default")
    finally:
        workers.close()


async def test_workers_write_to_postgres() -> None:
    with pg_schema() as url:
        settings = load_settings(database_url=url, ingest_workers=2)
        workers = IngestWorkers(settings)
        try:
            await asyncio.to_thread(workers.start)
            body = json.dumps(
                {"resourceSpans": [{"scopeSpans": [{"spans": [
                    {"traceId": "12" * 16, "spanId": "34" * 8, "name": "pg span",
                     "startTimeUnixNano": str(T0), "endTimeUnixNano": str(T0 + 5)}]}]}]}
            ).encode()  # fmt: skip
            outcomes = await asyncio.gather(
                workers.otlp(body, "application/json", "pg-project"),
                workers.otlp(_agent_request(7).SerializeToString(), PROTOBUF, "pg-project"),
            )
        finally:
            workers.close()
        assert [o.spans for o in outcomes] == [1, 5]
        store = open_store(settings)
        try:
            span = store.get_observation("34" * 8)
            assert span is not None and span.name == "pg span"
            detail = store.get_trace((7).to_bytes(16, "big").hex())
            assert detail is not None and detail.project == "pg-project"
            assert len(detail.observations) == 5
        finally:
            store.close()

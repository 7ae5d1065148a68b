"""The ingestion routes' edges, in-process through the real app: auth, partial batches,
retries, malformed payloads, body caps (gzip bombs included) and backpressure."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from traceyard.capture.tracer import Tracer
from traceyard.ingest.limits import DEFAULT_MAX_BODY_BYTES
from traceyard.server.app import create_app
from traceyard.server.state import ServerState

PK, SK = "pk-lf-edge", "sk-lf-edge"
AUTH = (PK, SK)


@pytest.fixture
def keys() -> Iterator[None]:
    previous = os.environ.get("TRACEYARD_LANGFUSE_KEYS")
    os.environ["TRACEYARD_LANGFUSE_KEYS"] = f"{PK}:{SK}@edge,pk-lf-other:sk-lf-other"
    yield
    if previous is None:
        os.environ.pop("TRACEYARD_LANGFUSE_KEYS", None)
    else:
        os.environ["TRACEYARD_LANGFUSE_KEYS"] = previous


def _tracer(data_dir: Path, **overrides: Any) -> Tracer:
    return Tracer.create(
        data_dir=data_dir, start_server=False, worker_batch_timeout=0.05, **overrides
    )


@pytest.fixture
async def client(keys: None, data_dir: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Tracer]]:
    tracer = _tracer(data_dir)
    assert tracer.store is not None
    app = create_app(ServerState(store=tracer.store, settings=tracer.settings, tracer=tracer))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        yield http, tracer
    tracer.stop()


def _envelope(kind: str, body: dict[str, Any], envelope_id: str | None = None) -> dict[str, Any]:
    return {
        "id": envelope_id or uuid.uuid4().hex,
        "type": kind,
        "timestamp": "2026-11-22T10:00:00.000000Z",
        "body": body,
    }


# ------------------------------------------------------------------------------ auth


async def test_langfuse_routes_need_a_configured_pair(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRACEYARD_LANGFUSE_KEYS", raising=False)
    tracer = _tracer(data_dir)
    assert tracer.store is not None
    app = create_app(ServerState(store=tracer.store, settings=tracer.settings, tracer=tracer))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
    ) as http:
        answer = await http.get("/api/public/projects", auth=AUTH)
        assert answer.status_code == 401
        assert "TRACEYARD_LANGFUSE_KEYS" in answer.json()["message"]
        health = await http.get("/api/public/health")
        assert health.status_code == 200 and health.json()["status"] == "OK"
    tracer.stop()


async def test_a_malformed_key_setting_is_reported_not_crashed(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACEYARD_LANGFUSE_KEYS", "pk-lf-only-a-public-key")
    tracer = _tracer(data_dir)
    assert tracer.store is not None
    app = create_app(ServerState(store=tracer.store, settings=tracer.settings, tracer=tracer))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
    ) as http:
        answer = await http.get("/api/public/projects", auth=AUTH)
        assert answer.status_code == 500
        assert "public_key:secret_key[@project]" in answer.json()["message"]
    tracer.stop()


async def test_key_pairs_select_the_project(client: tuple[httpx.AsyncClient, Tracer]) -> None:
    http, _ = client
    assert (await http.get("/api/public/projects")).status_code == 401
    wrong = await http.get("/api/public/projects", auth=(PK, "sk-lf-wrong"))
    assert wrong.status_code == 401 and "invalid Langfuse credentials" in wrong.json()["message"]
    mine = await http.get("/api/public/projects", auth=AUTH)
    assert mine.json()["data"][0]["id"] == "edge"
    other = await http.get("/api/public/projects", auth=("pk-lf-other", "sk-lf-other"))
    assert other.json()["data"][0]["id"] == "default"  # no @project: the default project


# ------------------------------------------------------------------------------ batches


async def test_partly_bad_batch_keeps_the_good_events(
    client: tuple[httpx.AsyncClient, Tracer],
) -> None:
    http, tracer = client
    good_trace = _envelope("trace-create", {"id": "t-1", "name": "good", "userId": "u"})
    good_span = _envelope("span-create", {"id": "s-1", "traceId": "t-1", "name": "step"})
    no_id = _envelope("span-create", {"traceId": "t-1", "name": "no id"})
    bad_level = _envelope("span-create", {"id": "s-2", "traceId": "t-1", "level": "LOUD"})
    unknown = _envelope("dataset-run-item-create", {"id": "x"})
    not_object = _envelope("span-create", {})
    not_object["body"] = "text"
    answer = await http.post(
        "/api/public/ingestion",
        auth=AUTH,
        json={"batch": [good_trace, good_span, no_id, bad_level, unknown, not_object, 7]},
    )
    assert answer.status_code == 207
    body = answer.json()
    assert {s["id"] for s in body["successes"]} == {good_trace["id"], good_span["id"]}
    errors = {e["id"]: e for e in body["errors"]}
    assert set(errors) == {
        no_id["id"],
        bad_level["id"],
        unknown["id"],
        not_object["id"],
        "batch[6]",
    }
    assert "'id' is required" in errors[no_id["id"]]["message"]
    assert "level" in errors[bad_level["id"]]["message"]
    assert "unsupported event type" in errors[unknown["id"]]["message"]
    assert all(e["status"] == 400 for e in body["errors"])
    tracer.flush()
    assert tracer.store is not None
    trace = tracer.store.get_trace("t-1")
    assert trace is not None and trace.project == "edge" and trace.name == "good"
    assert [o.id for o in trace.observations] == ["s-1"]


async def test_retried_envelopes_are_not_applied_twice_and_body_ids_merge(
    client: tuple[httpx.AsyncClient, Tracer],
) -> None:
    http, tracer = client
    first = _envelope("trace-create", {"id": "t-2", "name": "first", "tags": ["a"]})
    second = _envelope(
        "trace-create", {"id": "t-2", "name": "second", "tags": ["b"], "output": "done"}
    )
    for batch in ([first], [second], [first]):  # the last is a retry of an old delivery
        answer = await http.post("/api/public/ingestion", auth=AUTH, json={"batch": batch})
        assert answer.status_code == 207 and answer.json()["errors"] == []
        assert answer.json()["successes"] == [{"id": batch[0]["id"], "status": 201}]
    tracer.flush()
    assert tracer.store is not None
    trace = tracer.store.get_trace("t-2")
    assert trace is not None
    assert trace.name == "second"  # the retried first delivery did not overwrite it
    assert sorted(trace.tags) == ["a", "b"] and trace.output == "done"


async def test_malformed_bodies_get_clear_4xx(client: tuple[httpx.AsyncClient, Tracer]) -> None:
    http, _ = client
    headers = {"content-type": "application/json"}
    not_json = await http.post("/api/public/ingestion", auth=AUTH, content=b"{", headers=headers)
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["message"]
    no_batch = await http.post("/api/public/ingestion", auth=AUTH, json={"batch": "x"})
    assert no_batch.status_code == 400 and '"batch"' in no_batch.json()["message"]

    garbage = await http.post(
        "/v1/traces",
        content=b"\xff\xfe not protobuf",
        headers={"content-type": "application/x-protobuf"},
    )
    assert garbage.status_code == 400 and "ExportTraceServiceRequest" in garbage.json()["message"]
    bad_id = {
        "resourceSpans": [
            {"scopeSpans": [{"spans": [{"traceId": "xyz", "spanId": "01", "name": "s"}]}]}
        ]
    }
    bad = await http.post("/v1/traces", json=bad_id)
    assert bad.status_code == 400 and "traceId" in bad.json()["message"]
    xml = await http.post("/v1/traces", content=b"<x/>", headers={"content-type": "text/xml"})
    assert xml.status_code == 415 and "application/x-protobuf" in xml.json()["message"]
    brotli = await http.post(
        "/v1/traces",
        content=b"\x00",
        headers={"content-type": "application/x-protobuf", "content-encoding": "br"},
    )
    assert brotli.status_code == 415 and "gzip" in brotli.json()["message"]
    truncated = await http.post(
        "/v1/traces",
        content=gzip.compress(b"x" * 1000)[:20],
        headers={"content-type": "application/x-protobuf", "content-encoding": "gzip"},
    )
    assert truncated.status_code == 400 and "gzip" in truncated.json()["message"]


async def test_otlp_partial_success_reports_rejected_spans(
    client: tuple[httpx.AsyncClient, Tracer],
) -> None:
    http, tracer = client
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    good = spans.add(trace_id=bytes(range(1, 17)), span_id=bytes(range(1, 9)), name="good")
    good.start_time_unix_nano = 1_700_000_000_000_000_000
    spans.add(trace_id=b"\x00" * 16, span_id=bytes(range(1, 9)), name="zero trace id")
    answer = await http.post(
        "/v1/traces",
        content=request.SerializeToString(),
        headers={"content-type": "application/x-protobuf"},
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/x-protobuf"
    response = ExportTraceServiceResponse.FromString(answer.content)
    assert response.partial_success.rejected_spans == 1
    assert "zero trace id" in response.partial_success.error_message
    tracer.flush()
    assert tracer.store is not None
    assert tracer.store.get_observation(bytes(range(1, 9)).hex()) is not None


# ------------------------------------------------------------------------------ limits


async def test_body_cap_and_gzip_bomb(client: tuple[httpx.AsyncClient, Tracer]) -> None:
    http, _ = client
    too_big = await http.post(
        "/api/public/ingestion",
        auth=AUTH,
        content=b" " * (DEFAULT_MAX_BODY_BYTES + 1),
        headers={"content-type": "application/json"},
    )
    assert too_big.status_code == 413
    assert str(DEFAULT_MAX_BODY_BYTES) in too_big.json()["message"]
    # 20 MB of zeros gzip to ~20 KB: under the cap on the wire, far over it inflated.
    bomb = gzip.compress(b"\0" * (20 << 20), compresslevel=9)
    assert len(bomb) < DEFAULT_MAX_BODY_BYTES
    answer = await http.post(
        "/v1/traces",
        content=bomb,
        headers={"content-type": "application/x-protobuf", "content-encoding": "gzip"},
    )
    assert answer.status_code == 413
    assert "decompressed" in answer.json()["message"]
    assert str(DEFAULT_MAX_BODY_BYTES) in answer.json()["message"]


async def test_full_queue_answers_429_and_keeps_nothing(keys: None, data_dir: Path) -> None:
    tracer = _tracer(data_dir, queue_maxsize=5)
    assert tracer.store is not None
    app = create_app(ServerState(store=tracer.store, settings=tracer.settings, tracer=tracer))
    batch = [
        _envelope("span-create", {"id": f"s-{i}", "traceId": "t-full", "name": "x"})
        for i in range(10)
    ]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
    ) as http:
        answer = await http.post("/api/public/ingestion", auth=AUTH, json={"batch": batch})
        assert answer.status_code == 429
        assert answer.headers["retry-after"] == "1"
        assert "queue is full" in answer.json()["message"]
        # The refused envelopes are not remembered: the client's retry is applied.
        smaller = await http.post("/api/public/ingestion", auth=AUTH, json={"batch": batch[:3]})
        assert smaller.status_code == 207 and len(smaller.json()["successes"]) == 3
        metrics = (await http.get("/metrics")).text
        assert "traceyard_ingest_events_refused_busy_total 10" in metrics
        assert "traceyard_ingest_events_accepted_total 3" in metrics
    target = app.state.traceyard_ingest
    assert target.sink.stats.as_dict()["events_refused_busy"] == 10
    assert target.sink.stats.as_dict()["events_accepted"] == 3
    tracer.flush()
    assert tracer.stats().events_dropped == 0  # refused up front, not dropped after a 2xx
    assert tracer.store.counts().observations == 3
    tracer.stop()


# ------------------------------------------------------------------------------ scores


async def test_scores_object_and_array(client: tuple[httpx.AsyncClient, Tracer]) -> None:
    http, tracer = client
    one = await http.post(
        "/api/public/scores", auth=AUTH, json={"traceId": "t-s", "name": "q", "value": 0.5}
    )
    assert one.status_code == 200 and one.json()["id"]
    good = [
        {"id": "sc-1", "traceId": "t-s", "name": "ok", "value": 1, "dataType": "BOOLEAN"},
        {"id": "sc-2", "sessionId": "sess", "name": "label", "value": "good"},
    ]
    accepted = await http.post("/api/public/scores", auth=AUTH, json=good)
    assert accepted.status_code == 202 and accepted.json() == {"message": "Accepted"}
    mixed = await http.post(
        "/api/public/scores",
        auth=AUTH,
        json=[
            {"id": "sc-3", "traceId": "t-s", "name": "fine", "value": 2},
            {"name": "orphan", "value": 1},
            {"traceId": "t-s", "name": "bad", "value": "x", "dataType": "NUMERIC"},
        ],
    )
    assert mixed.status_code == 207
    assert mixed.json()["accepted"] == 1 and mixed.json()["rejected"] == 2
    messages = [e["message"] for e in mixed.json()["errors"]]
    assert "traceId, sessionId or datasetRunId" in messages[0]
    assert "NUMERIC" in messages[1]
    tracer.flush()
    assert tracer.store is not None
    names = {s.name for s in tracer.store.list_scores(limit=100).data}
    assert names == {"q", "ok", "label", "fine"}


# ------------------------------------------------------------------------------ prompts, media


async def test_prompt_errors(client: tuple[httpx.AsyncClient, Tracer]) -> None:
    http, _ = client
    missing = await http.get("/api/public/v2/prompts/nope", auth=AUTH)
    assert missing.status_code == 404 and "production" in missing.json()["message"]
    bad_chat = await http.post(
        "/api/public/v2/prompts",
        auth=AUTH,
        json={"name": "c", "type": "chat", "prompt": [{"content": "no role"}]},
    )
    assert bad_chat.status_code == 400 and "role" in bad_chat.json()["message"]
    created = await http.post(
        "/api/public/v2/prompts",
        auth=AUTH,
        json={"name": "folder/p", "prompt": "x", "labels": ["production"], "tags": None},
    )
    assert created.status_code == 200 and created.json()["tags"] == []
    fetched = await http.get("/api/public/v2/prompts/folder/p", auth=AUTH)
    assert fetched.json()["version"] == 1 and "latest" in fetched.json()["labels"]
    relabel = await http.patch(
        "/api/public/v2/prompts/folder/p/versions/1", auth=AUTH, json={"newLabels": ["exp"]}
    )
    assert relabel.status_code == 200 and "exp" in relabel.json()["labels"]
    listed = await http.get("/api/public/v2/prompts", auth=AUTH)
    assert [m["name"] for m in listed.json()["data"]] == ["folder/p"]


async def test_media_upload_is_verified(client: tuple[httpx.AsyncClient, Tracer]) -> None:
    http, tracer = client
    data = b"hello media"
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
    started = await http.post(
        "/api/public/media",
        auth=AUTH,
        json={
            "traceId": "t-m",
            "contentType": "text/plain",
            "contentLength": len(data),
            "sha256Hash": digest,
            "field": "input",
        },
    )
    assert started.status_code == 200
    media_id = started.json()["mediaId"]
    assert media_id == digest.replace("+", "-").replace("/", "_")[:22]
    url = started.json()["uploadUrl"]
    forged = await http.put(url.replace("signature=", "signature=0"), content=data)
    assert forged.status_code == 403
    wrong = await http.put(url, content=b"other bytes")
    assert wrong.status_code == 400 and "sha256Hash" in wrong.json()["message"]
    assert (await http.put(url, content=data)).status_code == 200
    assert (
        await http.patch(f"/api/public/media/{media_id}", auth=AUTH, json={})
    ).status_code == 204
    again = await http.post(
        "/api/public/media",
        auth=AUTH,
        json={"contentType": "text/plain", "contentLength": len(data), "sha256Hash": digest},
    )
    assert again.json() == {"mediaId": media_id, "uploadUrl": None}  # already uploaded
    assert tracer.store is not None
    record = tracer.store.get_media(media_id)
    assert record is not None and record.data == data and record.trace_id == "t-m"


async def test_delete_trace(client: tuple[httpx.AsyncClient, Tracer]) -> None:
    http, tracer = client
    await http.post(
        "/api/public/ingestion",
        auth=AUTH,
        json={"batch": [_envelope("trace-create", {"id": "t-del", "name": "gone soon"})]},
    )
    tracer.flush()
    assert (await http.get("/api/public/traces/t-del", auth=AUTH)).status_code == 200
    other_project = await http.delete(
        "/api/public/traces/t-del", auth=("pk-lf-other", "sk-lf-other")
    )
    assert other_project.status_code == 404  # another project's key cannot see it
    deleted = await http.delete("/api/public/traces/t-del", auth=AUTH)
    assert deleted.status_code == 200
    assert (await http.get("/api/public/traces/t-del", auth=AUTH)).status_code == 404


async def test_v1_traces_uses_the_server_bearer_token(keys: None, data_dir: Path) -> None:
    token = "t" * 40
    tracer = _tracer(data_dir, auth_token=token)
    assert tracer.store is not None
    app = create_app(ServerState(store=tracer.store, settings=tracer.settings, tracer=tracer))
    body = json.dumps({"resourceSpans": []}).encode()
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
    ) as http:
        assert (await http.post("/v1/traces", content=body, headers=headers)).status_code == 401
        allowed = await http.post(
            "/v1/traces", content=body, headers={**headers, "authorization": f"Bearer {token}"}
        )
        assert allowed.status_code == 200 and allowed.json() == {}
        # the Langfuse routes keep their own Basic auth even when a bearer token is set
        assert (await http.get("/api/public/projects", auth=AUTH)).status_code == 200
    tracer.stop()


async def test_a_server_without_tracer_writes_before_answering(keys: None, data_dir: Path) -> None:
    """``traceyard serve`` over a store other processes write to has no queue: 2xx must still
    mean durable, so the events are written before the answer."""
    from traceyard.config import load_settings
    from traceyard.store.factory import open_store

    settings = load_settings(data_dir=data_dir, start_server=False)
    store = open_store(settings)
    app = create_app(ServerState(store=store, settings=settings, tracer=None))
    request = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "name": "direct",
                                "startTimeUnixNano": "1700000000000000000",
                                "endTimeUnixNano": "1700000000500000000",
                                "status": {"code": "STATUS_CODE_ERROR", "message": "bad"},
                            }
                        ]
                    }
                ]
            }
        ]
    }
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
    ) as http:
        answer = await http.post("/v1/traces", json=request)
        assert answer.status_code == 200
    observation = store.get_observation("eee19b7ec3c1b174")  # no flush: already durable
    assert observation is not None and observation.name == "direct"
    assert observation.status_message == "bad" and observation.level.value == "ERROR"
    assert observation.latency_ms == pytest.approx(500)
    store.close()

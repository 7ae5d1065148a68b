"""Remote mode: the writer's sink that sends each batch to a central traceyard server.

It runs on the writer thread, never on the app's: the app only appends to the bounded queue,
so a slow or absent server costs it nothing. Per batch: JSON, gzip, ``POST /api/ingest`` on a
kept-alive connection with the server's Bearer token.

When the server is slow, down or busy the batch is NOT thrown away after a few tries: the sink
raises :class:`~traceyard.errors.StoreUnavailableError`, the writer keeps the batch and calls
again, and the bounded queue keeps absorbing events, dropping and counting past its bound, the
same policy as a local store that is locked or down. So a server restart loses nothing while
the queue has room, and the memory used is bounded either way. The pacing of the calls is the
sink's: exponential backoff with full jitter, or the server's ``Retry-After`` for 429/503. A
call before the next allowed attempt fails at once, without a request, so the writer's own
loop never hammers the server.

No duplicates: events are partial updates that stores upsert by id, so a batch re-sent after a
timeout (when the server had in fact stored it) rewrites the same rows with the same values.

A 413 splits the batch in halves; a single event still too large has its input and output cut
to a head (counted as ``truncated``). A 400/415/422 means we sent something the server cannot
read (a bug, or a client newer than the server): it raises :class:`RemoteRejectedError`, which
the writer reports and, after its retries, counts as lost.
"""

from __future__ import annotations

import gzip
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import httpx
import orjson

from traceyard._internal.serialize import dumps
from traceyard._version import __version__
from traceyard.errors import StoreUnavailableError, TraceyardError
from traceyard.model import Event
from traceyard.remote.retry import RETRYABLE_STATUSES, Backoff, parse_retry_after
from traceyard.remote.wire import encode_body, source_block

logger = logging.getLogger("traceyard")

INGEST_PATH = "/api/ingest"
#: Uncompressed bytes per request. The server's body limit for /api/ingest is 1 MiB
#: (compressed), and gzip never grows a body by more than a few hundred bytes.
DEFAULT_MAX_REQUEST_BYTES = 1_000_000
#: What is kept of a payload too large to send whole.
_TRUNCATED_HEAD_CHARS = 2_000
#: Idle connections are closed before uvicorn's 5 s keep-alive timeout can race a new request.
_KEEPALIVE_EXPIRY_S = 4.0
_GZIP_LEVEL = 1  # JSON shrinks ~5x at level 1; higher levels cost the writer more than they save


class RemoteRejectedError(TraceyardError):
    """The server refused a batch for good (400/415/422): retrying the same bytes cannot help."""


@dataclass(frozen=True)
class RemoteConfig:
    endpoint: str
    token: str | None = None
    timeout_s: float = 10.0
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    compress: bool = True


class _Outcome(Enum):
    DELIVERED = "delivered"
    SPLIT = "split"  # 413: send in smaller parts
    REJECTED = "rejected"  # refused for good
    RETRY = "retry"  # may succeed later


class _Chunk:
    """One request's worth of a batch, encoded once and re-sent as is on retries."""

    __slots__ = ("body", "count", "events", "truncated")

    def __init__(self, events: Sequence[Event], body: bytes, truncated: bool = False) -> None:
        self.events = events
        self.body = body
        self.count = len(events)
        self.truncated = truncated


class RemoteSink:
    """A :class:`~traceyard.pipeline.sink.Sink` that POSTs batches to a traceyard server."""

    def __init__(
        self,
        config: RemoteConfig,
        *,
        backoff: Backoff | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.config = config
        self.url = config.endpoint.rstrip("/") + INGEST_PATH
        self.backoff = backoff or Backoff()
        self._transport = transport
        self._client: httpx.Client | None = None
        self._pid = os.getpid()
        self._closed = False
        self._lock = threading.Lock()  # guards the client against close() from another thread
        # The batch being sent, kept across the writer's retries (identity of its list).
        self._pending_batch: Sequence[Event] | None = None
        self._pending: list[_Chunk] = []
        self._failures = 0
        self._not_before = 0.0
        self._retry_after: float | None = None
        self._reset_counters()

    def _reset_counters(self) -> None:
        self.events_sent = 0
        self.requests_sent = 0
        self.bytes_sent = 0
        self.attempts_failed = 0
        self.retries = 0
        self.events_rejected = 0
        self.events_truncated = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_success_at: float | None = None

    # ------------------------------------------------------------------ the Sink protocol

    def write(self, events: Sequence[Event]) -> None:
        self._check_process()
        if self._closed:
            raise StoreUnavailableError(f"the remote sender for {self.url} is closed")
        wait = self._not_before - time.monotonic()
        if wait > 0:
            raise StoreUnavailableError(
                f"{self.url}: next attempt in {wait:.1f}s after: {self.last_error}"
            )
        if events is not self._pending_batch:
            self._pending_batch = events
            self._pending = self._encode(events)
        while self._pending:
            chunk = self._pending[0]
            if self._failures:
                self.retries += 1
            outcome = self._post(chunk)
            if outcome is _Outcome.DELIVERED:
                self._pending.pop(0)
                self._failures = 0
            elif outcome is _Outcome.SPLIT:
                self._pending[:1] = self._split(chunk)
                self._failures = 0
            elif outcome is _Outcome.REJECTED:
                self._pending_batch, self._pending = None, []
                raise RemoteRejectedError(self.last_error or f"{self.url} refused the batch")
            else:
                self._failures += 1
                delay = self.backoff.delay(self._failures, self._retry_after)
                self._not_before = time.monotonic() + delay
                raise StoreUnavailableError(self.last_error or f"{self.url} is unavailable")
        self._pending_batch = None
        self._not_before = 0.0

    def close(self) -> None:
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
        if client is not None and self._pid == os.getpid():
            client.close()

    def before_fork(self) -> None:
        """The writer is paused: drop our connection so no socket is shared with the child."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # ------------------------------------------------------------------ figures

    def stats(self) -> dict[str, Any]:
        """Counters for ``tracer.stats()`` and ``/api/stats`` (events, not requests, unless
        named so). ``waiting_s`` > 0: backing off before the next attempt."""
        return {
            "endpoint": self.config.endpoint,
            "sent": self.events_sent,
            "requests": self.requests_sent,
            "bytes_sent": self.bytes_sent,
            "failed": self.attempts_failed,
            "retried": self.retries,
            "rejected": self.events_rejected,
            "truncated": self.events_truncated,
            "waiting_s": round(max(self._not_before - time.monotonic(), 0.0), 3),
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "last_success_at": self.last_success_at,
        }

    # ------------------------------------------------------------------ internals

    def _check_process(self) -> None:
        """A forked child starts afresh: its own connection, counters and pid."""
        pid = os.getpid()
        if pid == self._pid:
            return
        self._pid = pid
        self._client = None  # the parent's: never close it from here
        self._lock = threading.Lock()
        self._pending_batch = None
        self._pending = []
        self._failures = 0
        self._not_before = 0.0
        self._reset_counters()

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                headers = {
                    "User-Agent": f"traceyard/{__version__}",
                    "Content-Type": "application/json",
                }
                if self.config.compress:
                    headers["Content-Encoding"] = "gzip"
                if self.config.token:
                    headers["Authorization"] = f"Bearer {self.config.token}"
                timeout = httpx.Timeout(
                    self.config.timeout_s, connect=min(self.config.timeout_s, 5.0)
                )
                self._client = httpx.Client(
                    headers=headers,
                    timeout=timeout,
                    limits=httpx.Limits(
                        max_connections=1,
                        max_keepalive_connections=1,
                        keepalive_expiry=_KEEPALIVE_EXPIRY_S,
                    ),
                    transport=self._transport,
                    trust_env=False,
                )
            return self._client

    def _encode(self, events: Sequence[Event]) -> list[_Chunk]:
        """Bodies of at most ``max_request_bytes`` each (halving until they fit)."""
        source = source_block()
        todo: list[Sequence[Event]] = [events]
        chunks: list[_Chunk] = []
        while todo:
            part = todo.pop(0)
            raw = encode_body(part, source)
            if len(raw) <= self.config.max_request_bytes:
                chunks.append(self._chunk(part, raw))
            elif len(part) > 1:
                middle = len(part) // 2
                todo[:0] = [part[:middle], part[middle:]]
            else:
                chunks.append(self._truncated_chunk(part[0], _TRUNCATED_HEAD_CHARS, source))
        return chunks

    def _chunk(self, events: Sequence[Event], raw: bytes, truncated: bool = False) -> _Chunk:
        body = gzip.compress(raw, _GZIP_LEVEL) if self.config.compress else raw
        return _Chunk(events, body, truncated)

    def _split(self, chunk: _Chunk) -> list[_Chunk]:
        """After a 413: halves (the server's limit is lower than ours), then a truncated
        event (a truncated event refused again is REJECTED, never split)."""
        source = source_block()
        if chunk.count > 1:
            middle = chunk.count // 2
            halves = (chunk.events[:middle], chunk.events[middle:])
            return [self._chunk(part, encode_body(part, source)) for part in halves]
        return [self._truncated_chunk(chunk.events[0], _TRUNCATED_HEAD_CHARS // 4, source)]

    def _truncated_chunk(self, event: Event, limit: int, source: dict[str, Any]) -> _Chunk:
        """The event with its large payloads cut to a head and a note saying so."""
        self.events_truncated += 1
        fields = dict(event.fields)
        for key in ("input", "output", "metadata"):
            if fields.get(key) is not None:
                text = dumps(fields[key])
                if len(text) > limit:
                    note = f"[traceyard: {len(text)} characters cut to fit the remote limit]"
                    fields[key] = {"truncated": note} if key == "metadata" else text[:limit] + note
        cut = Event(event.entity, event.id, event.trace_id, event.project, fields)
        return self._chunk([cut], encode_body([cut], source), truncated=True)

    def _post(self, chunk: _Chunk) -> _Outcome:
        """One attempt at one request."""
        self._retry_after = None
        try:
            response = self._http().post(self.url, content=chunk.body)
        except httpx.HTTPError as exc:
            return self._failed(f"{type(exc).__name__}: {exc or 'no detail'} ({self.url})")
        except RuntimeError as exc:  # the client was closed by stop() from another thread
            return self._failed(f"client closed: {exc}")
        status = response.status_code
        if 200 <= status < 300:
            self._delivered(chunk, response)
            return _Outcome.DELIVERED
        message = f"{status} from {self.url}: {_error_message(response)}"
        if status == 413:
            self._failed(message)
            return _Outcome.SPLIT if chunk.count > 1 or not chunk.truncated else (_Outcome.REJECTED)
        if status in RETRYABLE_STATUSES:
            self._retry_after = parse_retry_after(response.headers.get("retry-after"))
            return self._failed(message)
        if status in (401, 403):
            return self._failed(f"{message} (set TRACEYARD_AUTH_TOKEN to the server's token)")
        if status in (404, 405):
            # Also what a proxy in front of a server being redeployed says: worth retrying.
            return self._failed(
                f"{message}; is TRACEYARD_ENDPOINT the base URL of a traceyard server?"
            )
        self._failed(message)
        return _Outcome.RETRY if status >= 500 else _Outcome.REJECTED

    def _failed(self, message: str) -> _Outcome:
        self.attempts_failed += 1
        self.last_error = message
        self.last_error_at = time.time()
        return _Outcome.RETRY

    def _delivered(self, chunk: _Chunk, response: httpx.Response) -> None:
        self.requests_sent += 1
        self.bytes_sent += len(chunk.body)
        rejected = 0
        if response.status_code == 207:
            try:
                rejected = int(orjson.loads(response.content).get("rejected", 0))
            except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
                rejected = 0
            if rejected:
                self.last_error = f"the server refused {rejected} events: {response.text[:500]}"
                self.last_error_at = time.time()
        self.events_rejected += rejected
        self.events_sent += chunk.count - rejected
        self.last_success_at = time.time()


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(body.get("message"), str):
            return str(body["message"])
    return response.text[:300]

"""Choosing where a tracer's batches go: the local store, a remote server, forwarders.

Two independent choices, made once when the tracer starts:

* **Where traces are kept.** Locally (the store from ``database_url`` / ``data_dir``, the
  default), or on a central traceyard server when ``endpoint`` is set (remote mode: batches
  go over HTTP and this process opens no store at all).
* **Forwarding** (``tracing_mode``): ``local`` keeps traces only where they are kept;
  ``local+forward`` also sends them to every ``forward_targets`` entry (Langfuse, OTLP);
  ``forward`` sends them to the targets only, with local trace storage off. Unset means
  ``local+forward`` when targets are configured, else ``local``.

:func:`describe` says what is in force (for ``/api/health`` and ``traceyard status``) and
:func:`sink_stats` gives the live counters of the remote sender and each target.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from traceyard.config import Settings
from traceyard.errors import ConfigError
from traceyard.forward.config import LangfuseTarget, OtlpTarget, parse_targets, unique_labels
from traceyard.pipeline.sink import Sink
from traceyard.store.base import Store

LOCAL = "local"
LOCAL_AND_FORWARD = "local+forward"
FORWARD_ONLY = "forward"
TRACING_MODES = (LOCAL, LOCAL_AND_FORWARD, FORWARD_ONLY)


@dataclass(frozen=True)
class Routing:
    """What the settings ask for, validated."""

    #: local, local+forward or forward (as configured, or inferred from the targets)
    mode: str
    #: the central server's base URL in remote mode, else None
    endpoint: str | None
    targets: list[LangfuseTarget | OtlpTarget] = field(default_factory=list)

    @property
    def forwards(self) -> bool:
        return self.mode != LOCAL and bool(self.targets)

    @property
    def storage(self) -> str:
        """``local``, ``remote`` (the endpoint's server) or ``none`` (forward only)."""
        if self.mode == FORWARD_ONLY:
            return "none"
        return "remote" if self.endpoint else "local"

    @property
    def effective_mode(self) -> str:
        """The mode in one word for people: local, local+forward, forward, remote,
        remote+forward."""
        if self.endpoint:
            return "remote+forward" if self.forwards else "remote"
        return self.mode


def setting(settings: Settings, name: str, default: Any = None) -> Any:
    """A setting's value, or ``default`` when it is unset."""
    value = getattr(settings, name)
    return default if value is None else value


def resolve(settings: Settings) -> Routing:
    """Validate the routing settings; ConfigError names the variable to fix."""
    endpoint = setting(settings, "endpoint")
    if endpoint is not None:
        endpoint = str(endpoint).strip().rstrip("/")
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                f"endpoint (TRACEYARD_ENDPOINT) must be the http(s) URL of a traceyard server, "
                f"e.g. http://tracing.internal:7842; got {endpoint!r}"
            )
    targets = parse_targets(setting(settings, "forward_targets"))
    mode = setting(settings, "tracing_mode")
    if mode is None:
        mode = LOCAL_AND_FORWARD if targets else LOCAL
    mode = str(mode).strip().lower()
    if mode not in TRACING_MODES:
        raise ConfigError(
            f"tracing_mode (TRACEYARD_TRACING_MODE) must be one of {', '.join(TRACING_MODES)}; "
            f"got {mode!r}"
        )
    if mode != LOCAL and not targets:
        raise ConfigError(
            f"tracing_mode {mode!r} forwards traces, but forward_targets "
            "(TRACEYARD_FORWARD_TARGETS) is empty: add a target or use tracing_mode 'local'"
        )
    if mode == FORWARD_ONLY and endpoint:
        raise ConfigError(
            "endpoint (TRACEYARD_ENDPOINT) keeps traces on a traceyard server, and tracing_mode "
            "'forward' keeps them nowhere: unset one of the two (use 'local+forward' to send "
            "them to the server and forward them)"
        )
    return Routing(mode, endpoint, targets)


def open_sink(
    settings: Settings, store_factory: Callable[[], Store] | None = None
) -> tuple[Store | None, Sink]:
    """The local store (None when traces are not stored locally) and the writer's sink."""
    from traceyard.store.factory import open_store

    routing = resolve(settings)
    store: Store | None = None
    primary: Sink | None
    if routing.endpoint:
        primary = _remote_sink(settings, routing.endpoint)
    elif routing.mode == FORWARD_ONLY:
        primary = None
    else:
        store = store_factory() if store_factory is not None else open_store(settings)
        primary = store
    if not routing.forwards:
        assert primary is not None  # only forward-only mode has none, and it forwards
        return store, primary
    from traceyard.forward.fanout import FanoutSink
    from traceyard.forward.forwarder import Forwarder

    labels = unique_labels(routing.targets)
    forwarders = [Forwarder(t, label) for t, label in zip(routing.targets, labels, strict=True)]
    return store, FanoutSink(primary, forwarders, owns_primary=store is None)


def describe(settings: Settings) -> dict[str, Any]:
    """What is in force, for ``/api/health`` and ``traceyard status`` (no secrets)::

    {"tracing_mode": "remote+forward", "storage": "remote",
     "endpoint": "http://central:7842", "forwarding": ["langfuse https://...", ...]}
    """
    routing = resolve(settings)
    return {
        "tracing_mode": routing.effective_mode,
        "storage": routing.storage,
        "endpoint": routing.endpoint,
        "forwarding": unique_labels(routing.targets) if routing.forwards else [],
    }


def sink_stats(sink: object) -> dict[str, Any]:
    """Live counters of a tracer's sink: ``{"remote": {...} | None, "forwarding": {label:
    {...}}}``; both empty for a plain local store."""
    if not {"traceyard.forward.fanout", "traceyard.remote.sender"} & sys.modules.keys():
        # neither kind of sink was ever built in this process: don't import them (httpx) now
        return {"remote": None, "forwarding": {}}
    from traceyard.forward.fanout import FanoutSink
    from traceyard.remote.sender import RemoteSink

    if isinstance(sink, FanoutSink):
        return sink.stats()
    if isinstance(sink, RemoteSink):
        return {"remote": sink.stats(), "forwarding": {}}
    return {"remote": None, "forwarding": {}}


def _remote_sink(settings: Settings, endpoint: str) -> Sink:
    from traceyard.remote.sender import DEFAULT_MAX_REQUEST_BYTES, RemoteConfig, RemoteSink

    config = RemoteConfig(
        endpoint=endpoint,
        token=settings.auth_token,
        timeout_s=setting(settings, "remote_timeout_s", 10.0),
        max_request_bytes=setting(settings, "remote_max_request_bytes", DEFAULT_MAX_REQUEST_BYTES),
        compress=setting(settings, "remote_compress", True),
    )
    if config.timeout_s <= 0 or config.max_request_bytes < 1024:
        raise ConfigError(
            "remote_timeout_s must be > 0 and remote_max_request_bytes at least 1024 "
            f"(got {config.timeout_s}, {config.max_request_bytes})"
        )
    return RemoteSink(config)

"""Test support for the ingestion tests: a live traceyard on loopback, client venvs, waiting.

The server is the real app (``Tracer.create(start_server=True)``: uvicorn on 127.0.0.1, a free
port, the real writer and a SQLite file), so every test goes through HTTP as a client would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from traceyard.capture.tracer import Tracer
from traceyard.model import TraceDetail
from traceyard.store.base import TraceQuery

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent
#: Client libraries that conflict with (or are absent from) the dev environment live in a
#: venv of their own, created once and cached under .cache/ (ignored by git).
CLIENTS_VENV = REPO / ".cache" / "ingest-clients"
CLIENTS_REQUIREMENTS = ("langfuse<3", "opentelemetry-sdk", "opentelemetry-exporter-otlp-json-http")


@dataclass
class LiveServer:
    tracer: Tracer
    url: str  # no trailing slash, as SDKs expect their host
    public_key: str
    secret_key: str
    project: str

    @property
    def store(self) -> Any:
        return self.tracer.store

    def flush(self) -> None:
        assert self.tracer.flush(10) == 0, "the writer did not drain in time"

    def traces(self, **filters: Any) -> list[TraceDetail]:
        self.flush()
        page = self.store.list_traces(TraceQuery(limit=1000, **filters))  # every project
        details = [self.store.get_trace(trace.id) for trace in page.data]
        return [detail for detail in details if detail is not None]


@contextmanager
def live_server(
    data_dir: Path, *, public_key: str, project: str = "proj1", **overrides: Any
) -> Iterator[LiveServer]:
    """A running traceyard whose Langfuse key pair is ``public_key:sk-<public_key>@project``."""
    secret_key = "sk-" + public_key
    previous = os.environ.get("TRACEYARD_LANGFUSE_KEYS")
    os.environ["TRACEYARD_LANGFUSE_KEYS"] = f"{public_key}:{secret_key}@{project}"
    tracer = Tracer.create(
        data_dir=data_dir,
        start_server=True,
        host="127.0.0.1",
        port=0,
        worker_batch_timeout=0.05,
        **overrides,
    )
    try:
        assert tracer.server is not None, "the embedded server did not start"
        yield LiveServer(tracer, tracer.server.url.rstrip("/"), public_key, secret_key, project)
    finally:
        tracer.stop()
        if previous is None:
            os.environ.pop("TRACEYARD_LANGFUSE_KEYS", None)
        else:
            os.environ["TRACEYARD_LANGFUSE_KEYS"] = previous


def wait_for(predicate: Callable[[], T | None], timeout: float = 15.0, what: str = "") -> T:
    """Poll until ``predicate()`` is truthy (bounded); fail naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.05)


def clients_python() -> Path:
    """The python of the cached client venv (``langfuse<3``, the OTLP/JSON exporter)."""
    python = CLIENTS_VENV / "bin" / "python"
    marker = CLIENTS_VENV / ".requirements"
    wanted = "\n".join(CLIENTS_REQUIREMENTS)
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    subprocess.run(
        ["uv", "venv", "-q", "--allow-existing", "--python", sys.executable, str(CLIENTS_VENV)],
        check=True,
    )
    subprocess.run(
        ["uv", "pip", "install", "-q", "--python", str(python), *CLIENTS_REQUIREMENTS],
        check=True,
    )
    marker.write_text(wanted)
    return python


def run_client(script: str, env: dict[str, str], timeout: float = 60) -> str:
    """Run a client script in the cached venv; its failure fails the test with its output."""
    python = clients_python()
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("TRACEYARD_")}
    clean_env.update(env)
    result = subprocess.run(
        [str(python), "-c", script],
        env=clean_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"client failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout

"""Test support: a real Arize Phoenix server on loopback, and reading spans back from it.

Phoenix runs from its own venv (``.cache/phoenix-venv``, made by ``scripts/setup.sh --test``
from the pins in ``tests/phoenix-requirements.txt``) as a subprocess: 127.0.0.1, free ports,
a temporary working dir, no telemetry and no outbound requests. Its startup is slow (importing
the server alone takes ~20 s of CPU here), so one server serves a whole test module.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
PHOENIX_VENV = REPO / ".cache" / "phoenix-venv"
PHOENIX_PINS = REPO / "tests" / "phoenix-requirements.txt"
#: Bounds for a loaded 2-core machine, where startup alone took 30-90 s.
STARTUP_TIMEOUT_S = 240.0
STOP_TIMEOUT_S = 15.0
REQUEST_TIMEOUT_S = 30.0  # httpx's default 5 s is short for Phoenix on a busy machine


#: Runs Phoenix, and ends it if the test process goes without stopping it (killed with
#: SIGKILL, say: no ``finally`` runs then): an orphan's parent changes.
_LAUNCHER = """
import os, runpy, sys, threading, time
parent = os.getppid()
def watch():
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(1)
threading.Thread(target=watch, daemon=True).start()
sys.argv = ["phoenix", "serve"]
runpy.run_module("phoenix.server.main", run_name="__main__")
"""


def phoenix_python() -> Path:
    """The Phoenix venv's python; fails (never skips) when it is missing or stale."""
    python = PHOENIX_VENV / "bin" / "python"
    marker = PHOENIX_VENV / ".requirements"
    pins = PHOENIX_PINS.read_text()
    if not python.exists() or not marker.exists() or marker.read_text() != pins:
        raise AssertionError(
            f"{PHOENIX_VENV} is missing or not built from {PHOENIX_PINS.name}: "
            "run scripts/setup.sh --test"
        )
    return python


def pinned_version() -> str:
    for line in PHOENIX_PINS.read_text().splitlines():
        if line.startswith("arize-phoenix=="):
            return line.split("==", 1)[1]
    raise AssertionError(f"{PHOENIX_PINS.name} pins no arize-phoenix")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Phoenix:
    url: str  # no trailing slash
    log: Path

    @property
    def traces_endpoint(self) -> str:
        """Where OTLP/HTTP exporters send (protobuf, gzip accepted)."""
        return self.url + "/v1/traces"

    def spans(self, project: str) -> list[dict[str, Any]]:
        """Every span of ``project`` through Phoenix's REST API, oldest first."""
        spans: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 1000, "sort": "start_time", "order": "asc"}
            if cursor:
                params["cursor"] = cursor
            response = httpx.get(
                f"{self.url}/v1/projects/{project}/spans",
                params=params,
                timeout=REQUEST_TIMEOUT_S,
            )
            if response.status_code == 404:  # no span of this project arrived yet
                return []
            response.raise_for_status()
            body = response.json()
            spans.extend(body["data"])
            cursor = body.get("next_cursor")
            if not cursor:
                return spans

    def version(self) -> str:
        response = httpx.get(self.url + "/arize_phoenix_version", timeout=REQUEST_TIMEOUT_S)
        response.raise_for_status()
        return response.text.strip()

    def session_traces(self, session_id: str) -> list[str] | None:
        """Trace ids Phoenix grouped into a session; None while it has no such session."""
        response = httpx.get(f"{self.url}/v1/sessions/{session_id}", timeout=REQUEST_TIMEOUT_S)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return [trace["trace_id"] for trace in response.json()["data"]["traces"]]

    def get(self, path: str) -> Any:
        response = httpx.get(self.url + path, timeout=REQUEST_TIMEOUT_S)
        response.raise_for_status()
        return response.json()

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _environment(working_dir: Path, port: int, grpc_port: int) -> dict[str, str]:
    # Nothing of the caller's Phoenix or OTel settings (a collector endpoint, a database
    # URL) may leak in: this server must be private, local and offline.
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PHOENIX_", "OTEL_", "TRACEYARD_"))
    }
    env.update(
        PHOENIX_HOST="127.0.0.1",
        PHOENIX_PORT=str(port),
        PHOENIX_GRPC_PORT=str(grpc_port),
        PHOENIX_WORKING_DIR=str(working_dir),  # its SQLite database lives here
        PHOENIX_TELEMETRY_ENABLED="false",
        PHOENIX_ALLOW_EXTERNAL_RESOURCES="false",  # no fonts, pixels or downloads
        PHOENIX_DISABLE_AGENT_ASSISTANT="true",
        PYTHONUNBUFFERED="1",  # so the log is complete when a failure shows it
    )
    return env


@contextmanager
def phoenix_server(working_dir: Path) -> Iterator[Phoenix]:
    """A running Phoenix, healthy before it is yielded, always stopped afterwards."""
    python = phoenix_python()
    working_dir.mkdir(parents=True, exist_ok=True)
    port, grpc_port = _free_port(), _free_port()
    log = working_dir / "phoenix.log"
    phoenix = Phoenix(f"http://127.0.0.1:{port}", log)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(python), "-c", _LAUNCHER],
            env=_environment(working_dir, port, grpc_port),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_healthy(phoenix, process)
        yield phoenix
    finally:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT_S)


def _wait_until_healthy(phoenix: Phoenix, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise AssertionError(
                f"Phoenix exited with {process.returncode} while starting:\n{phoenix.log_tail()}"
            )
        try:
            if httpx.get(phoenix.url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(
                f"Phoenix not healthy after {STARTUP_TIMEOUT_S}s:\n{phoenix.log_tail()}"
            )
        time.sleep(0.25)

"""Arize Phoenix as a peer in the benches: its venv, its server, and its UI's GraphQL queries.

Phoenix lives in its own venv, ``.cache/phoenix-venv`` in the repo (git-ignored), created here
with uv on first use and reused after, as ``compare_tracesage.py`` does for tracesage.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from _peer_venv import peer_python

PHOENIX_VERSION = "20.26.1"
BENCH_DIR = Path(__file__).resolve().parent
VENV_DIR = BENCH_DIR.parent / ".cache" / "phoenix-venv"


def ensure_venv(venv: Path = VENV_DIR) -> Path:
    """The venv's python with arize-phoenix installed (created on first use, reused after)."""
    probe = "import importlib.metadata as m; print(m.version('arize-phoenix'))"
    return peer_python(venv, f"arize-phoenix=={PHOENIX_VERSION}", PHOENIX_VERSION, probe)


def venv_env() -> dict[str, str]:
    """Our environment for Phoenix's processes, minus PYTHONDONTWRITEBYTECODE: without
    cached bytecode each start compiles its ~6,000 modules again (~1 minute here)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class PhoenixServer:
    url: str
    process: subprocess.Popen[bytes]
    working_dir: Path


@contextlib.contextmanager
def phoenix_server(venv: Path, working_dir: Path) -> Iterator[PhoenixServer]:
    """`phoenix serve` on 127.0.0.1 (free ports) over ``working_dir``; stopped on exit."""
    port = free_port()
    env = {
        **venv_env(),
        "PHOENIX_WORKING_DIR": str(working_dir),
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(free_port()),
        "PHOENIX_TELEMETRY_ENABLED": "false",
    }
    log_path = working_dir / "phoenix.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(venv / "bin" / "phoenix"), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 600  # a cold start on a busy 2-core machine is slow
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                        break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"phoenix did not start:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.5)
            yield PhoenixServer(url, process, working_dir)
        finally:
            process.terminate()
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def ui_queries(venv: Path) -> dict[str, str]:
    """The GraphQL documents Phoenix's own UI sends, read from the installed UI bundle (so
    they are exactly this version's), by operation name."""
    site = next((venv / "lib").glob("python3*/site-packages/phoenix/server/static/assets"))
    found: dict[str, str] = {}
    pattern = re.compile(r"name:`(\w+)`,operationKind:`query`,text:`([^`]*)`")
    for bundle in site.glob("*.js"):
        for match in pattern.finditer(bundle.read_text(errors="replace")):
            found[match.group(1)] = match.group(2)
    return found

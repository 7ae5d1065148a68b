"""Behind a real nginx (Debian's) under a path prefix: the UI page and its assets, the API and
the WebSocket (upgrade proxied) all work at /traceyard/."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from traceyard.capture.tracer import Tracer

NGINX = "/usr/sbin/nginx"

_CONFIG = """
daemon off;
master_process off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    server {{
        listen 127.0.0.1:{port};
        location /traceyard/ {{
            proxy_pass http://127.0.0.1:{upstream}/;
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 60s;
        }}
    }}
}}
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"nginx exited: {log.read_text() if log.exists() else ''}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise AssertionError("nginx did not start listening")


@pytest.fixture
def live_tracer(data_dir: Path) -> Iterator[Tracer]:
    tracer = Tracer.create(data_dir=data_dir, start_server=True, port=0, worker_batch_timeout=0.02)
    yield tracer
    tracer.stop()


@pytest.fixture
def nginx(tmp_path: Path, live_tracer: Tracer) -> Iterator[str]:
    """nginx on a free loopback port proxying /traceyard/ to the tracer's server."""
    assert Path(NGINX).exists(), "Debian's nginx package is required for this test"
    root = tmp_path / "nginx"
    root.mkdir()
    port = _free_port()
    config = root / "nginx.conf"
    config.write_text(_CONFIG.format(tmp=root, port=port, upstream=live_tracer.server.port))
    process = subprocess.Popen(
        [NGINX, "-p", str(root), "-c", str(config), "-e", str(root / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_listening(port, process, root / "error.log")
        yield f"http://127.0.0.1:{port}/traceyard/"
    finally:
        process.kill()
        process.wait()


def test_ui_api_and_websocket_through_a_path_prefix(nginx: str, live_tracer: Tracer) -> None:
    with live_tracer.span("behind-proxy"):
        pass
    live_tracer.flush()
    with httpx.Client(base_url=nginx, timeout=10) as client:
        page = client.get("")
        assert page.status_code == 200 and "<html" in page.text.lower()
        assets = re.findall(r'(?:src|href)="([^"#]+)"', page.text)
        assert assets, "the page references its assets"
        for asset in assets:
            assert not asset.startswith(("/", "http:", "https:")), f"non-relative URL {asset}"
            assert client.get(asset).status_code == 200, asset
        traces = client.get("api/traces").json()["data"]
        assert [t["name"] for t in traces] == ["behind-proxy"]
        assert client.get("api/health").json()["status"] == "ok"
    ws_url = nginx.replace("http://", "ws://") + "api/ws"
    origin = nginx.split("/traceyard/")[0]  # what a browser on the proxied page sends
    with connect(ws_url, origin=origin) as ws:  # type: ignore[arg-type]
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        with live_tracer.span("live-through-proxy"):
            pass
        changes: list[dict[str, object]] = []
        while not any(c.get("name") == "live-through-proxy" for c in changes):
            frame = json.loads(ws.recv(timeout=10))
            changes.extend(frame.get("changes", []))

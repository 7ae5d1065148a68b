"""Peers (tracesage, Phoenix) run from venvs of their own under ``.cache/`` (git-ignored):
their pins conflict with ours. Each is built with uv on first use and reused after."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


def peer_python(venv: Path, spec: str, version: str, probe: str) -> Path:
    """The venv's python with ``spec`` installed; ``probe`` is Python code printing the
    installed version, which must equal ``version`` (else the venv is rebuilt)."""
    python = venv / "bin" / "python"
    if _probe(python, probe) == version:
        return python
    # The same interpreter as ours where it is new enough (both peers need >= 3.11 or 3.10).
    interpreter = sys.executable if sys.version_info >= (3, 11) else "3.11"
    print(f"creating {venv} with {spec} ...", flush=True)
    _uv("venv", "--clear", "--python", interpreter, str(venv))
    _uv("pip", "install", "--python", str(python), spec)
    if (got := _probe(python, probe)) != version:
        sys.exit(f"{spec} not importable in {venv} (got {got})")
    return python


def _probe(python: Path, code: str) -> str | None:
    if not python.exists():
        return None
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def _uv(*args: str) -> None:
    uv = shutil.which("uv")
    if uv is None:
        sys.exit("uv is needed to build a peer's venv: https://docs.astral.sh/uv/")
    done = subprocess.run([uv, *args], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"uv {' '.join(args)} failed:\n{done.stdout}{done.stderr}")

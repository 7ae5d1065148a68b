"""Shared fixtures. Internal errors of traceyard fail the test that caused them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["TRACEYARD_STRICT"] = "1"
# Tests never start the embedded server unless they ask for it.
os.environ.setdefault("TRACEYARD_START_SERVER", "false")

from traceyard._internal import guard
from traceyard.capture.tracer import Tracer


@pytest.fixture(autouse=True)
def _no_internal_errors() -> Iterator[None]:
    """traceyard swallows its own errors in apps; in our tests they must fail loudly."""
    guard.recorded.clear()
    yield
    errors = list(guard.recorded)
    guard.recorded.clear()
    if errors:
        raise AssertionError(f"traceyard internal errors: {errors!r}") from errors[0]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def tracer(data_dir: Path) -> Iterator[Tracer]:
    """A running tracer on a fresh SQLite data dir, stopped after the test."""
    t = Tracer.create(data_dir=data_dir, start_server=False, worker_batch_timeout=0.05)
    yield t
    t.stop()

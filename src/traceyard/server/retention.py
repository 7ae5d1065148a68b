"""Retention: ``retention_max_traces`` / ``retention_max_age`` applied in the background, and
the duration syntax shared with ``traceyard prune --older-than``."""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime, timedelta, timezone

from starlette.concurrency import run_in_threadpool

from traceyard._internal import guard
from traceyard.errors import ConfigError
from traceyard.server.state import ServerState

logger = logging.getLogger("traceyard.server")

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)

#: Seconds between background retention passes (the first runs at start).
RETENTION_INTERVAL_S = 300.0


def parse_duration(text: str) -> timedelta:
    """``"7d"``, ``"12h"``, ``"30m"``, ``"90s"``, ``"2w"`` → a timedelta."""
    match = _DURATION.match(text)
    if match is None:
        raise ConfigError(
            f"{text!r} is not a duration: use a number and a unit s, m, h, d or w (e.g. 7d)"
        )
    seconds = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if seconds <= 0:
        raise ConfigError(f"{text!r}: a retention duration must be positive")
    return timedelta(seconds=seconds)


def retention_policy(state: ServerState) -> tuple[int | None, timedelta | None]:
    settings = state.settings
    max_age = getattr(settings, "retention_max_age", None)
    return (
        getattr(settings, "retention_max_traces", None),
        parse_duration(max_age) if max_age else None,
    )


def apply_retention(state: ServerState) -> int:
    """One retention pass (blocking): prune the store; returns how many traces went."""
    max_traces, max_age = retention_policy(state)
    if max_traces is None and max_age is None:
        return 0
    older_than = datetime.now(timezone.utc) - max_age if max_age is not None else None
    deleted = state.store.prune(max_traces=max_traces, older_than=older_than)
    state.counters.retention_runs += 1
    state.counters.retention_deleted += deleted
    if deleted:
        logger.info("retention: deleted %d traces", deleted)
    return deleted


async def run_retention(state: ServerState, interval_s: float = RETENTION_INTERVAL_S) -> None:
    """Background task: a retention pass now, then every ``interval_s``."""
    while True:
        with guard.guarded("background retention"):
            await run_in_threadpool(apply_retention, state)
        await asyncio.sleep(interval_s)

"""File-level operations on a SQLite data dir: a consistent live backup and reclaiming space.

These work on the database file with the ``sqlite3`` module, beside (not through) the store:
they are about pages and files, not traces.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from traceyard.errors import StoreError

DB_FILENAME = "traceyard.db"
#: Pages copied per backup step: small steps let a progress bar move on big files.
_BACKUP_STEP_PAGES = 4096


def dir_size(path: Path) -> int:
    """Bytes of every file under ``path`` (0 if it does not exist)."""
    if not path.exists():
        return 0
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / name).stat().st_size
    return total


@dataclass(frozen=True)
class BackupResult:
    path: Path
    pages: int
    size_bytes: int
    integrity: str


def backup(
    data_dir: Path, dest_dir: Path, progress: Callable[[int, int], None] | None = None
) -> BackupResult:
    """Copy the live database of ``data_dir`` into ``dest_dir`` (a new data dir).

    Uses the online backup API inside one read transaction on the source: the copy is the
    database as of the moment that transaction began, whatever apps write meanwhile (WAL
    readers do not block writers, so the apps never wait for the backup). Holding the read
    snapshot also keeps SQLite from restarting the backup when another connection writes.
    """
    source_path = data_dir / DB_FILENAME
    if not source_path.is_file():
        raise StoreError(f"no traceyard database at {source_path}")
    dest_path = dest_dir / DB_FILENAME
    if dest_path.exists():
        raise StoreError(f"{dest_path} already exists; back up into a new directory")
    dest_dir.mkdir(parents=True, exist_ok=True)
    partial = dest_dir / (DB_FILENAME + ".partial")
    partial.unlink(missing_ok=True)
    source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True, isolation_level=None)
    target = sqlite3.connect(partial, isolation_level=None)
    try:
        source.execute("PRAGMA busy_timeout=10000")
        source.execute("BEGIN")
        source.execute("SELECT count(*) FROM sqlite_master").fetchone()  # start the snapshot

        def step(status: int, remaining: int, total: int) -> None:
            if progress is not None:
                progress(total - remaining, total)

        source.backup(target, pages=_BACKUP_STEP_PAGES, progress=step)
        source.execute("COMMIT")
        pages = target.execute("PRAGMA page_count").fetchone()[0]
        target.execute("PRAGMA journal_mode=WAL")
        integrity = target.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        source.close()
        target.close()
    if integrity != "ok":
        raise StoreError(f"the backup failed its integrity check: {integrity}")
    partial.rename(dest_path)
    return BackupResult(dest_path, pages, dest_path.stat().st_size, integrity)


def reclaim_space(data_dir: Path) -> tuple[int, int]:
    """Give freed pages back to the file system after a prune; (bytes before, after).

    ``VACUUM`` rewrites the file and needs a moment with no writer; if an app holds the lock
    for longer than the busy timeout, fall back to a WAL checkpoint (the freed pages are then
    reused by later writes instead of returned).
    """
    path = data_dir / DB_FILENAME
    before = dir_size(data_dir)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout=10000")
        try:
            conn.execute("VACUUM")
        except sqlite3.OperationalError:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        else:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return before, dir_size(data_dir)

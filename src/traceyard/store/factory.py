"""Choosing the store from settings: no URL → SQLite in the data dir."""

from __future__ import annotations

from traceyard.config import Settings
from traceyard.cost.pricing import PriceTable
from traceyard.errors import ConfigError
from traceyard.store.base import Store


def open_store(settings: Settings) -> Store:
    """Open the store the settings name (``database_url``), creating it if needed."""
    prices = PriceTable.default().with_overrides(settings.model_prices)
    url = settings.database_url
    if url is None:
        from traceyard.store.sqlite import SQLiteStore

        return SQLiteStore.in_dir(
            settings.data_dir, blob_threshold_bytes=settings.blob_threshold_bytes, prices=prices
        )
    if url.startswith("memory://"):
        from traceyard.store.memory import MemoryStore

        return MemoryStore(max_traces=settings.retention_max_traces, prices=prices)
    if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        from traceyard.store.postgres import PostgresStore

        return PostgresStore(url, blob_threshold_bytes=settings.blob_threshold_bytes, prices=prices)
    raise ConfigError(
        f"TRACEYARD_DATABASE_URL / database_url {url!r} is not understood: use "
        "postgresql://user@host/db, memory://, or leave it unset for SQLite in data_dir"
    )

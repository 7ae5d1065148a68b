"""Stores: where traces live. One contract (:mod:`.base`), several backends."""

from __future__ import annotations

from traceyard.store.base import Page, Store, StoreCounts, TraceQuery, TraceSort

__all__ = ["Page", "Store", "StoreCounts", "TraceQuery", "TraceSort"]

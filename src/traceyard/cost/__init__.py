"""Usage normalisation and cost: one disjoint usage model, priced per bucket."""

from traceyard.cost.pricing import PriceEntry, PriceTable, compute_cost
from traceyard.cost.usage import normalize_usage

__all__ = ["PriceEntry", "PriceTable", "compute_cost", "normalize_usage"]

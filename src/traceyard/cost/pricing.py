"""Model prices and the per-bucket cost of a normalised usage.

The shipped ``prices.json`` holds list prices as published by each provider
(USD per single unit, standard tier, no batch/priority/regional discounts, and
the base tier where a provider charges more above a context threshold); users
override or extend it in config via :meth:`PriceTable.with_overrides`.

Cost is computed on the background writer thread for every generation, so
model-name lookups are memoised per name and :meth:`PriceTable.cost` does no
regex work after the first call for a given model.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cache, lru_cache
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter, field_validator

__all__ = ["PriceEntry", "PriceTable", "compute_cost"]

# Optional ``provider/`` segments (``openai/``, ``openrouter/anthropic/``,
# ``models/``) in front of the bare model name.
PROVIDER_PREFIX = r"(?:[^/]+/)*"

# A bucket without its own price is billed like the bucket it refines, so a
# price entry only needs to list what differs.  Buckets absent from both the
# entry and this map are not priced at all.
_FALLBACK_BUCKET = {
    "cache_read": "input",
    "cache_write": "input",
    "input_audio": "input",
    "reasoning": "output",
    "output_audio": "output",
}
_FIND_CACHE_SIZE = 2048


class PriceEntry(BaseModel):
    """The prices of one model, and the names it answers to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(min_length=1, description="Display name of the model.")
    match: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "Regular expression matched case-insensitively against the whole model name; "
            "defaults to the escaped model name with optional provider/ prefixes."
        ),
    )
    prices: dict[str, float] = Field(
        default_factory=dict,
        description="USD per single unit, keyed by canonical usage bucket (input, output, ...).",
    )

    _pattern: re.Pattern[str] = PrivateAttr()

    @field_validator("match")
    @classmethod
    def _match_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value, re.IGNORECASE)
            except re.error as exc:
                raise ValueError(f"match is not a valid regular expression: {exc}") from exc
        return value

    @field_validator("prices")
    @classmethod
    def _prices_are_sane(cls, value: dict[str, float]) -> dict[str, float]:
        for bucket, price in value.items():
            if not bucket:
                raise ValueError("price bucket names must not be empty")
            if not math.isfinite(price) or price < 0:
                raise ValueError(f"price for {bucket!r} must be a finite number >= 0")
        return value

    def model_post_init(self, context: Any, /) -> None:
        source = self.match if self.match is not None else PROVIDER_PREFIX + re.escape(self.model)
        self._pattern = re.compile(source, re.IGNORECASE)

    @property
    def pattern(self) -> re.Pattern[str]:
        """The compiled ``match`` (or default) pattern."""
        return self._pattern

    def matches(self, model: str) -> bool:
        """Whether ``model`` is a name of this entry (full, case-insensitive match)."""
        return self._pattern.fullmatch(model) is not None

    def price_of(self, bucket: str) -> float | None:
        """Price of one unit of ``bucket``, falling back to the bucket it refines."""
        price = self.prices.get(bucket)
        if price is None and bucket in _FALLBACK_BUCKET:
            price = self.prices.get(_FALLBACK_BUCKET[bucket])
        return price


_ENTRY_LIST: TypeAdapter[list[PriceEntry]] = TypeAdapter(list[PriceEntry])


class PriceTable:
    """An ordered list of price entries; the first entry whose pattern matches wins."""

    __slots__ = ("_entries", "_find")

    def __init__(self, entries: Iterable[PriceEntry] = ()) -> None:
        self._entries: tuple[PriceEntry, ...] = tuple(entries)
        # Per-instance so a table's cache dies with it; lru_cache is thread-safe.
        self._find: Callable[[str], PriceEntry | None] = lru_cache(maxsize=_FIND_CACHE_SIZE)(
            self._scan
        )

    @classmethod
    def default(cls) -> PriceTable:
        """The shipped table (loaded once per process)."""
        return _default_table()

    @classmethod
    def from_json(cls, data: str | bytes) -> PriceTable:
        """Build a table from a JSON array of ``{"model", "match", "prices"}`` objects."""
        return cls(_ENTRY_LIST.validate_json(data))

    @property
    def entries(self) -> tuple[PriceEntry, ...]:
        return self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"PriceTable({len(self._entries)} entries)"

    def with_overrides(self, entries: Sequence[PriceEntry]) -> PriceTable:
        """A new table trying ``entries`` before this one's, so users can add or replace models."""
        return PriceTable((*entries, *self._entries))

    def find(self, model: str) -> PriceEntry | None:
        """The entry pricing ``model``, or None if no pattern matches."""
        if not isinstance(model, str):
            return None
        name = model.strip()
        if not name:
            return None
        return self._find(name)

    def cost(self, model: str | None, usage: Mapping[str, float] | None) -> dict[str, float] | None:
        """USD cost per usage bucket plus ``total``.

        ``usage`` is a :func:`~traceyard.cost.normalize_usage` result.  Returns
        None when the model is unknown, there is no usage, or no bucket has a
        price (an unknown cost is not a zero cost).  The ``total`` usage bucket
        is never priced: it restates the others.
        """
        if not model or not usage:
            return None
        entry = self.find(model)
        if entry is None:
            return None
        costs: dict[str, float] = {}
        for bucket, amount in usage.items():
            if bucket == "total":
                continue
            quantity = _quantity(amount)
            if quantity is None:
                continue
            price = entry.price_of(bucket)
            if price is not None:
                costs[bucket] = quantity * price
        if not costs:
            return None
        costs["total"] = math.fsum(costs.values())
        return costs

    def _scan(self, model: str) -> PriceEntry | None:
        for entry in self._entries:
            if entry.pattern.fullmatch(model) is not None:
                return entry
        return None


def compute_cost(
    model: str | None,
    usage: Mapping[str, float] | None,
    table: PriceTable | None = None,
) -> dict[str, float] | None:
    """:meth:`PriceTable.cost` against ``table``, or the shipped table by default."""
    return (table if table is not None else PriceTable.default()).cost(model, usage)


@cache
def _default_table() -> PriceTable:
    data = resources.files("traceyard.cost").joinpath("prices.json").read_bytes()
    return PriceTable.from_json(data)


def _quantity(amount: object) -> float | None:
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        return None
    if not math.isfinite(amount) or amount < 0:
        return None
    return amount

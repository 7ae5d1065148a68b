"""Parameter types shared by the routes."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

#: Stores keep times as int64 nanoseconds since the epoch: 1970 to 2262.
_EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
_LATEST = datetime(2262, 4, 10, tzinfo=timezone.utc)
_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _iso_only(value: Any) -> Any:
    # Pydantic would read "1.5" as a Unix timestamp; the API promises ISO 8601 date-times.
    if isinstance(value, (int, float)) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("expected an ISO 8601 date-time such as 2026-03-01T12:00:00Z")
    return value


def _clamped(value: datetime) -> datetime:
    """Naive → UTC; clamp to what a store can hold, which keeps a filter's meaning (nothing
    is stored before 1970 or after 2262) instead of failing on far-away dates."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return min(max(value, _EARLIEST), _LATEST)


#: A point in time for filters and ranges: ISO 8601, naive means UTC.
Moment = Annotated[datetime, BeforeValidator(_iso_only), AfterValidator(_clamped)]

"""Parameter types shared by the routes."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from pydantic import AfterValidator

#: Stores keep times as int64 nanoseconds since the epoch: 1970 to 2262.
_EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
_LATEST = datetime(2262, 4, 11, tzinfo=timezone.utc)


def _in_store_range(value: datetime) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)  # a time without offset is UTC
    if not _EARLIEST <= value < _LATEST:
        raise ValueError("must be between 1970-01-01 and 2262-04-10 (UTC)")
    return value


#: A point in time a store can hold (naive values are taken as UTC).
Moment = Annotated[datetime, AfterValidator(_in_store_range)]

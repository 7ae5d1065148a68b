"""When to try again: exponential backoff with full jitter, and the server's ``Retry-After``.

Shared by the remote-mode sender and the forwarders. Full jitter (a uniform draw between 0 and
the exponential bound, AWS's "Exponential Backoff And Jitter") spreads the retries of many
clients that failed at the same moment, e.g. every process of a pool when the server restarts,
so they do not come back as one thundering herd. A ``Retry-After`` the server sends wins over
our own guess, within a cap so a misconfigured proxy cannot park a client for hours.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

#: Statuses after which the same request may succeed later.
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass
class Backoff:
    """The delay before attempt ``n + 1`` after ``n`` consecutive failures."""

    base_s: float = 0.2
    cap_s: float = 5.0
    #: Longest ``Retry-After`` honoured as given; longer ones are cut to this.
    retry_after_cap_s: float = 30.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, failures: int, retry_after_s: float | None = None) -> float:
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.retry_after_cap_s)
        bound = min(self.cap_s, self.base_s * (2 ** max(failures - 1, 0)))
        return self.rng.uniform(0.0, bound)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(when.timestamp() - current, 0.0)

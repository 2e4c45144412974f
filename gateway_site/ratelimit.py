"""Fixed-window rate limiting: windows aligned to the Unix epoch, one atomic counter each.

Counters live in a bounded store (gateway_site.boundedstore): buckets are named after caller-controlled text (an
address, a route id), so the store caps how many it keeps and drops them once their window has passed.
"""

from __future__ import annotations

import math
import time

from gateway_site.boundedstore import bounded_store
from gateway_site.errors import TooManyRequests

MAX_BUCKETS = 200_000


def hit(bucket: str, limit: int, window: int, *, now: float | None = None) -> bool:
    """Count one request in `bucket`'s current window; True when it is within `limit`.

    `incr` is atomic, so concurrent requests never lose a count. A counter lives two windows, then is dropped.
    """
    current = time.time() if now is None else now
    index = int(current // window)
    store = bounded_store("rate-windows", ttl=window * 2, max_entries=MAX_BUCKETS)
    return store.incr(f"{bucket}:{index}") <= limit


def seconds_left(window: int, *, now: float | None = None) -> int:
    """Whole seconds until the current window ends, rounded up: at least 1 (ingress's `Retry-After`,
    docs/protocol/tunnels.md §5)."""
    current = time.time() if now is None else now
    return max(1, math.ceil(window - current % window))


def enforce(bucket: str, limit: int, window: int, message: str = "too_many_requests") -> None:
    """Raise the contract's 429 (with `Retry-After: <window>`) when `bucket` is over `limit`."""
    if not hit(bucket, limit, window):
        raise TooManyRequests(message, headers={"Retry-After": str(window)})

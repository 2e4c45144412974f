"""Fixed-window rate limiting: windows aligned to the Unix epoch, one atomic counter each.

Counters live in a key/value store (gateway_site.kvstore): buckets are named after caller-controlled text (an
address, a route id), so the in-process store caps how many it keeps, and every implementation drops them once their
window has passed. With the Redis store, every process counts in the same windows.
"""

from __future__ import annotations

import math
import time

from gateway_site import metrics
from gateway_site.errors import TooManyRequests
from gateway_site.kvstore import KeyValueStore, blocking, kv_store

MAX_BUCKETS = 200_000


def _window(bucket: str, window: int, now: float | None) -> tuple[KeyValueStore, str]:
    """The store of `window`-second windows (a counter lives two windows) and the key of `bucket`'s current one."""
    current = time.time() if now is None else now
    store = kv_store("rate-windows", ttl=window * 2, max_entries=MAX_BUCKETS)
    return store, f"{bucket}:{int(current // window)}"


async def hit(bucket: str, limit: int, window: int, *, scope: str = "", now: float | None = None) -> bool:
    """Count one request in `bucket`'s current window; True when it is within `limit`. `incr` is atomic, so
    concurrent requests (in any process sharing the store) never lose a count. A refusal counts in
    `gateway_rate_limited_total{scope}` when `scope` is given (gateway_site.metrics.RATE_LIMIT_SCOPES)."""
    store, key = _window(bucket, window, now)
    return _allowed(await store.incr(key) <= limit, scope)


def hit_blocking(bucket: str, limit: int, window: int, *, scope: str = "", now: float | None = None) -> bool:
    """`hit` for sync code (a worker thread, not the event loop's)."""
    store, key = _window(bucket, window, now)
    return _allowed(blocking(store).incr(key) <= limit, scope)


def _allowed(allowed: bool, scope: str) -> bool:
    if not allowed and scope:
        metrics.rate_limited(scope)
    return allowed


def seconds_left(window: int, *, now: float | None = None) -> int:
    """Whole seconds until the current window ends, rounded up: at least 1 (ingress's `Retry-After`,
    docs/protocol/tunnels.md §5)."""
    current = time.time() if now is None else now
    return max(1, math.ceil(window - current % window))


def enforce(bucket: str, limit: int, window: int, message: str = "too_many_requests", *, scope: str = "") -> None:
    """Raise the contract's 429 (with `Retry-After: <window>`) when `bucket` is over `limit` (sync code)."""
    if not hit_blocking(bucket, limit, window, scope=scope):
        raise TooManyRequests(message, headers={"Retry-After": str(window)})

"""Fixed-window rate limiting in the `state` cache: windows aligned to the Unix epoch, one atomic counter each."""

from __future__ import annotations

import time

from django.core.cache import caches

from gateway_site.errors import TooManyRequests


def hit(bucket: str, limit: int, window: int, *, now: float | None = None) -> bool:
    """Count one request in `bucket`'s current window; True when it is within `limit`.

    `add` then `incr` are each atomic in the cache, so concurrent requests never lose a count.
    """
    current = time.time() if now is None else now
    index = int(current // window)
    key = f"rl:{bucket}:{index}"
    cache = caches["state"]
    # The window's counter expires one window after it closes.
    if cache.add(key, 1, timeout=window * 2):
        count = 1
    else:
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=window * 2)
            count = 1
    return count <= limit


def enforce(bucket: str, limit: int, window: int, message: str = "too_many_requests") -> None:
    """Raise the contract's 429 (with `Retry-After: <window>`) when `bucket` is over `limit`."""
    if not hit(bucket, limit, window):
        raise TooManyRequests(message, headers={"Retry-After": str(window)})

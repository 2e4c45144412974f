"""Leases: the caps of docs/protocol/decisions.md H3 that hold per user, per owner or per route rather than per process
(event streams per user, agent and tunnel sockets per owner, webhooks in flight per route and per owner).

A holder takes one of `limit` places under a key (`acquire`) for a lifetime (`ttl`), renews it while it lives and
releases it when done. A lease that is neither renewed nor released lapses, so the places of a process that died
come back by themselves. `Leases` is the protocol; the implementation is chosen in settings (`GATEWAY_LEASES`, an
import path): `MemoryLeases` here counts in this process, gateway_site.redis_stores.RedisLeases counts in Redis for
several processes. `tests/system/test_leases_conformance.py` runs the same tests against both.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from django.conf import settings
from django.utils.module_loading import import_string


class Leases(Protocol):
    async def acquire(self, key: str, limit: int, lease_id: str, ttl: float) -> bool:
        """Hold one of `limit` places of `key` as `lease_id` for `ttl` seconds; True when held. Lapsed leases make
        room first. A lease already held is renewed (True whatever the count). Atomic: concurrent acquires never
        hold more than `limit` places."""
        ...

    async def renew(self, key: str, lease_id: str, ttl: float) -> bool:
        """Hold `lease_id` for `ttl` more seconds; False when it is no longer held (released or lapsed)."""
        ...

    async def release(self, key: str, lease_id: str) -> None: ...

    async def holders(self, key: str) -> list[str]:
        """The lease ids that hold `key` now, sorted."""
        ...


class MemoryLeases:
    """The in-process implementation: lease id -> expiry (monotonic clock) per key, behind one lock."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._held: dict[str, dict[str, float]] = {}

    def _prune(self, key: str, held: dict[str, float], now: float) -> None:
        for lease_id in [lease for lease, expires in held.items() if expires <= now]:
            del held[lease_id]
        if not held:
            self._held.pop(key, None)

    async def acquire(self, key: str, limit: int, lease_id: str, ttl: float) -> bool:
        with self._lock:
            now = self._clock()
            held = self._held.setdefault(key, {})
            if lease_id not in held and len(held) >= limit:
                self._prune(key, held, now)  # only a full key is scanned: the common path stays O(1)
                if len(held) >= limit:
                    return False
                held = self._held.setdefault(key, held)
            held[lease_id] = now + ttl
            return True

    async def renew(self, key: str, lease_id: str, ttl: float) -> bool:
        with self._lock:
            now = self._clock()
            held = self._held.get(key)
            if held is None or held.get(lease_id, now) <= now:
                return False
            held[lease_id] = now + ttl
            return True

    async def release(self, key: str, lease_id: str) -> None:
        with self._lock:
            held = self._held.get(key)
            if held is not None:
                held.pop(lease_id, None)
                if not held:
                    del self._held[key]

    async def holders(self, key: str) -> list[str]:
        with self._lock:
            held = self._held.get(key)
            if held is None:
                return []
            self._prune(key, held, self._clock())
            return sorted(held)

    def clear(self) -> None:
        """Forget every lease (tests)."""
        with self._lock:
            self._held.clear()


@functools.cache
def lease_store() -> Leases:
    """The implementation named by `GATEWAY_LEASES` (one per process)."""
    store: Leases = import_string(settings.GATEWAY_LEASES)()
    return store


class _LeasesProxy:
    """`leases`: the configured implementation, looked up at first use (settings are not ready at import time)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(lease_store(), name)


leases: Leases = _LeasesProxy()

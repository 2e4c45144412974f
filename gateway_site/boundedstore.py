"""In-process key/value stores for state keyed by text a caller chooses (decisions.md H3).

Rate-limit windows, route snapshots, idempotency keys and operator token ids are named by whoever sends the request,
so they must not live in a cache that keeps expired keys until they are read again (Django's LocMemCache does) or
that culls live entries when it fills. A `BoundedStore` holds at most `max_entries` keys, each with one lifetime for
the whole store: entries sit in insertion order, which is also their expiry order, so expired keys are dropped from
the front on every write, and when the store is full the oldest entry goes first. Values are plain objects (no
pickling). All methods are atomic (one lock), so threads (sync views) and the event loop can share a store.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

Clock = Callable[[], float]


class BoundedStore:
    def __init__(self, name: str, *, ttl: float, max_entries: int, clock: Clock = time.monotonic) -> None:
        self.name = name
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def _drop_expired(self, now: float) -> None:
        entries = self._entries
        while entries:
            key, (expires, _) = next(iter(entries.items()))
            if expires > now:
                break
            del entries[key]

    def _purge(self, now: float) -> None:
        """Make room for one more entry: the expired ones go, then the oldest while the store is full."""
        self._drop_expired(now)
        while len(self._entries) >= self.max_entries:
            self._entries.popitem(last=False)

    def _live(self, key: str, now: float) -> tuple[float, Any] | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= now:
            return None
        return entry

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            entry = self._live(key, self._clock())
        return default if entry is None else entry[1]

    def set(self, key: str, value: Any) -> None:
        """Store `value` for the store's lifetime, counted from now."""
        with self._lock:
            now = self._clock()
            self._entries.pop(key, None)
            self._purge(now)
            self._entries[key] = (now + self.ttl, value)

    def add(self, key: str, value: Any = True) -> bool:
        """Store `value` unless a live entry exists; True when stored (an atomic claim)."""
        with self._lock:
            now = self._clock()
            if self._live(key, now) is not None:
                return False
            self._entries.pop(key, None)
            self._purge(now)
            self._entries[key] = (now + self.ttl, value)
            return True

    def incr(self, key: str) -> int:
        """Add one to the counter at `key` (created at 1, with a fresh lifetime); returns the new count."""
        with self._lock:
            now = self._clock()
            entry = self._live(key, now)
            if entry is None:
                self._entries.pop(key, None)
                self._purge(now)
                self._entries[key] = (now + self.ttl, 1)
                return 1
            count = int(entry[1]) + 1
            self._entries[key] = (entry[0], count)  # keeps its place: the expiry order does not change
            return count

    def purge(self) -> None:
        """Drop every expired entry now (the housekeeping thread calls this when no writes come to do it)."""
        with self._lock:
            self._drop_expired(self._clock())

    def delete(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_stores: dict[tuple[str, float], BoundedStore] = {}
_stores_lock = threading.Lock()


def bounded_store(name: str, *, ttl: float, max_entries: int) -> BoundedStore:
    """The process's store `name` for lifetime `ttl` (one per lifetime, so a changed setting gets its own)."""
    with _stores_lock:
        store = _stores.get((name, ttl))
        if store is None:
            store = _stores[(name, ttl)] = BoundedStore(name, ttl=ttl, max_entries=max_entries)
        return store


def purge_all() -> None:
    for store in list(_stores.values()):
        store.purge()


def clear_all() -> None:
    for store in list(_stores.values()):
        store.clear()

"""Key/value stores for state keyed by text a caller chooses (docs/protocol/decisions.md H3): rate-limit windows,
route snapshots, "route used" marks, operator token ids.

`KeyValueStore` is the protocol: a named store whose entries all live for the store's `ttl`. The implementation is
chosen in settings (`GATEWAY_KEY_VALUE_STORE`, an import path): `MemoryKeyValueStore` here keeps plain objects in a
bounded in-process store (gateway_site.boundedstore), and gateway_site.redis_stores keeps them in Redis for several
processes. `tests/system/test_kvstore_conformance.py` runs the same tests against both.

Code that is not async (a sync Django view, a database signal handler) reaches a store through `blocking(store)`:
the memory store answers directly, without leaving the thread; any other store is driven by asgiref's
`async_to_sync`, so it must not be called from a thread that runs an event loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from asgiref.sync import async_to_sync
from django.conf import settings
from django.utils.module_loading import import_string

from gateway_site.boundedstore import bounded_store


class KeyValueStore(Protocol):
    name: str
    ttl: float

    async def get(self, key: str) -> Any:
        """The live value at `key`, or None."""
        ...

    async def set(self, key: str, value: Any) -> None:
        """Store `value` (a JSON value) for the store's lifetime, counted from now."""
        ...

    async def add(self, key: str, value: Any = True) -> bool:
        """Store `value` unless a live entry exists; True when stored (an atomic claim)."""
        ...

    async def incr(self, key: str) -> int:
        """Add one to the counter at `key` (created at 1 with a fresh lifetime, which later increments keep); returns
        the new count. Concurrent increments are all counted."""
        ...

    async def delete(self, key: str) -> None: ...


class SyncKeyValueStore(Protocol):
    """The same operations for code that is not async (`blocking`)."""

    def get(self, key: str) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...

    def add(self, key: str, value: Any = True) -> bool: ...

    def incr(self, key: str) -> int: ...

    def delete(self, key: str) -> None: ...


class MemoryKeyValueStore:
    """The in-process store: the process's `BoundedStore` of that name and lifetime, at most `max_entries` keys."""

    def __init__(self, name: str, *, ttl: float, max_entries: int) -> None:
        self.name = name
        self.ttl = ttl
        self.bounded = bounded_store(name, ttl=ttl, max_entries=max_entries)

    async def get(self, key: str) -> Any:
        return self.bounded.get(key)

    async def set(self, key: str, value: Any) -> None:
        self.bounded.set(key, value)

    async def add(self, key: str, value: Any = True) -> bool:
        return self.bounded.add(key, value)

    async def incr(self, key: str) -> int:
        return self.bounded.incr(key)

    async def delete(self, key: str) -> None:
        self.bounded.delete(key)


class _Blocking:
    """A store's operations driven to completion from a thread without a running event loop."""

    def __init__(self, store: KeyValueStore) -> None:
        self.get: Callable[[str], Any] = async_to_sync(store.get)
        self.set: Callable[[str, Any], None] = async_to_sync(store.set)
        self.add: Callable[..., bool] = async_to_sync(store.add)
        self.incr: Callable[[str], int] = async_to_sync(store.incr)
        self.delete: Callable[[str], None] = async_to_sync(store.delete)


def blocking(store: KeyValueStore) -> SyncKeyValueStore:
    """`store`'s operations for sync code: the bounded store itself for the memory implementation."""
    if isinstance(store, MemoryKeyValueStore):
        return store.bounded
    return _Blocking(store)


_stores: dict[tuple[str, str, float], KeyValueStore] = {}
_stores_lock = threading.Lock()


def kv_store(name: str, *, ttl: float, max_entries: int) -> KeyValueStore:
    """The store `name` with lifetime `ttl` of the implementation named by `GATEWAY_KEY_VALUE_STORE` (one per
    process and lifetime; `max_entries` bounds the in-process implementation)."""
    path: str = settings.GATEWAY_KEY_VALUE_STORE
    found = _stores.get((path, name, ttl))
    if found is not None:
        return found
    with _stores_lock:
        found = _stores.get((path, name, ttl))
        if found is None:
            found = _stores[(path, name, ttl)] = import_string(path)(name, ttl=ttl, max_entries=max_entries)
        return found

"""Ephemeral relay state: device presence (docs/protocol/devices-and-shares.md §6-7, docs/protocol/relay.md §5.2).

`PresenceStore` is the protocol; the implementation is chosen in settings (`GATEWAY_PRESENCE_STORE`, an import
path): `MemoryPresenceStore` here keeps plain records in this process, relay.redis_presence keeps them in Redis for
several processes. `tests/relay/test_presence_conformance.py` runs the same tests against both.

A record names the connection that holds the device and the process (`node_id`) that holds its socket. The newest
connection replaces the record; renewing and going offline compare the connection id first, so a replaced socket's
late teardown never marks the new connection's device offline. A record is online until `expires_at` and is kept a
little past it, so listings can tell "expired" from "never connected"; a process that dies stops claiming its
devices within PRESENCE_TTL_SECONDS, since nobody renews its records.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings
from django.utils.module_loading import import_string

PRESENCE_TTL_SECONDS = 60
PRESENCE_RENEW_SECONDS = 20
LAST_SEEN_DEBOUNCE_SECONDS = 30
PRESENCE_KEEP_SECONDS = PRESENCE_TTL_SECONDS  # how long a record outlives its expiry


@dataclass(frozen=True)
class Presence:
    connection_id: str
    node_id: str
    connected_at: int
    last_seen_at: int
    expires_at: int

    def online(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) <= self.expires_at


class PresenceStore(Protocol):
    async def mark_online(self, device_id: str, connection_id: str, node_id: str, now: int | None = None) -> Presence:
        """Record that `connection_id` on process `node_id` holds the device now (replacing any record)."""
        ...

    async def renew(self, device_id: str, connection_id: str, now: int | None = None) -> bool:
        """Extend the expiry (and, at most every 30 s, last_seen_at) if `connection_id` still holds the device."""
        ...

    async def mark_offline(self, device_id: str, connection_id: str) -> bool:
        """Clear presence only if `connection_id` still holds the device; True when it did."""
        ...

    async def clear(self, device_id: str) -> None: ...

    async def get(self, device_id: str) -> Presence | None: ...

    async def get_many(self, device_ids: list[str]) -> dict[str, Presence]:
        """The records found among `device_ids` (online or recently expired)."""
        ...


def new_record(connection_id: str, node_id: str, now: int) -> Presence:
    return Presence(connection_id, node_id, now, now, now + PRESENCE_TTL_SECONDS)


def renewed(record: Presence, now: int) -> Presence:
    last_seen = now if now - record.last_seen_at >= LAST_SEEN_DEBOUNCE_SECONDS else record.last_seen_at
    return Presence(record.connection_id, record.node_id, record.connected_at, last_seen, now + PRESENCE_TTL_SECONDS)


class MemoryPresenceStore:
    """The in-process store: device id -> Presence (immutable records) in a dict behind one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, Presence] = {}

    def _live(self, device_id: str) -> Presence | None:
        """The kept record, dropping it once it is past its keep time (called with the lock held)."""
        record = self._records.get(device_id)
        if record is not None and time.time() > record.expires_at + PRESENCE_KEEP_SECONDS:
            del self._records[device_id]
            return None
        return record

    async def mark_online(self, device_id: str, connection_id: str, node_id: str, now: int | None = None) -> Presence:
        record = new_record(connection_id, node_id, int(time.time()) if now is None else now)
        with self._lock:
            self._records[device_id] = record
        return record

    async def renew(self, device_id: str, connection_id: str, now: int | None = None) -> bool:
        current = int(time.time()) if now is None else now
        with self._lock:
            record = self._live(device_id)
            if record is None or record.connection_id != connection_id:
                return False
            self._records[device_id] = renewed(record, current)
        return True

    async def mark_offline(self, device_id: str, connection_id: str) -> bool:
        with self._lock:
            record = self._live(device_id)
            if record is None or record.connection_id != connection_id:
                return False
            del self._records[device_id]
        return True

    async def clear(self, device_id: str) -> None:
        with self._lock:
            self._records.pop(device_id, None)

    async def get(self, device_id: str) -> Presence | None:
        with self._lock:
            return self._live(device_id)

    async def get_many(self, device_ids: list[str]) -> dict[str, Presence]:
        with self._lock:
            found = {device_id: self._live(device_id) for device_id in device_ids}
        return {device_id: record for device_id, record in found.items() if record is not None}

    def clear_all(self) -> None:
        """Forget every record (tests)."""
        with self._lock:
            self._records.clear()


@functools.cache
def presence_store() -> PresenceStore:
    """The store named by `GATEWAY_PRESENCE_STORE` (one per process)."""
    store: PresenceStore = import_string(settings.GATEWAY_PRESENCE_STORE)()
    return store


class _StoreProxy:
    """`presence`: the configured store, looked up at first use (settings are not ready at import time)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(presence_store(), name)


presence: PresenceStore = _StoreProxy()

"""Ephemeral relay state in the `state` cache: device presence.

Records are plain dicts with their own expiry. Read-modify-write methods hold the store's lock: locmem has no
compare-and-set, and a replaced socket's late teardown must not mark the new connection's device offline.
A Redis implementation would do the same with a small Lua script or WATCH.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from django.core.cache import caches

PRESENCE_TTL_SECONDS = 60
PRESENCE_RENEW_SECONDS = 20
LAST_SEEN_DEBOUNCE_SECONDS = 30


@dataclass(frozen=True)
class Presence:
    connection_id: str
    node_id: str
    connected_at: int
    last_seen_at: int
    expires_at: int

    def online(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) <= self.expires_at


class PresenceStore:
    """Who is connected: `presence:<device_id>` -> the connection that holds the device, with its expiry."""

    _lock = threading.Lock()

    def __init__(self) -> None:
        self.cache = caches["state"]

    @staticmethod
    def _key(device_id: str) -> str:
        return f"presence:{device_id}"

    def _put(self, device_id: str, record: dict[str, Any]) -> None:
        # Keep the record a little past its expiry so that listings can tell "expired" from "never connected".
        self.cache.set(self._key(device_id), record, timeout=PRESENCE_TTL_SECONDS * 2)

    def mark_online(self, device_id: str, connection_id: str, node_id: str, now: int | None = None) -> Presence:
        now = int(time.time()) if now is None else now
        record: dict[str, Any] = {
            "connection_id": connection_id,
            "node_id": node_id,
            "connected_at": now,
            "last_seen_at": now,
            "expires_at": now + PRESENCE_TTL_SECONDS,
        }
        with self._lock:
            self._put(device_id, record)
        return Presence(**record)

    def renew(self, device_id: str, connection_id: str, now: int | None = None) -> bool:
        """Extend the expiry (and, at most every 30 s, last_seen) if `connection_id` still holds the device."""
        now = int(time.time()) if now is None else now
        with self._lock:  # read-modify-write: see the module docstring
            record = self.cache.get(self._key(device_id))
            if not record or record["connection_id"] != connection_id:
                return False
            record["expires_at"] = now + PRESENCE_TTL_SECONDS
            if now - record["last_seen_at"] >= LAST_SEEN_DEBOUNCE_SECONDS:
                record["last_seen_at"] = now
            self._put(device_id, record)
        return True

    def mark_offline(self, device_id: str, connection_id: str) -> bool:
        """Clear presence only if `connection_id` still holds the device; True when it did."""
        with self._lock:  # compare-and-delete: see the module docstring
            record = self.cache.get(self._key(device_id))
            if not record or record["connection_id"] != connection_id:
                return False
            self.cache.delete(self._key(device_id))
        return True

    def clear(self, device_id: str) -> None:
        with self._lock:
            self.cache.delete(self._key(device_id))

    def get(self, device_id: str) -> Presence | None:
        record = self.cache.get(self._key(device_id))
        return Presence(**record) if record else None

    def get_many(self, device_ids: list[str]) -> dict[str, Presence]:
        keys = {self._key(d): d for d in device_ids}
        found = self.cache.get_many(list(keys))
        return {keys[key]: Presence(**record) for key, record in found.items()}


presence = PresenceStore()

"""Ephemeral relay sessions in the `state` cache: session records, their event backlogs and idempotency keys.

A session is a plain dict (docs/protocol/relay.md §2). Every read-modify-write goes through one method holding the
store's lock (locmem has no compare-and-set); a Redis implementation would use WATCH or a Lua script for the same
methods. Event ids come from one process-wide counter, so they increase across all sessions.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.core.cache import caches

from gateway_site.boundedstore import BoundedStore, bounded_store

BACKLOG_LIMIT = 1000
MAX_IDEMPOTENCY_KEYS = 200_000  # callers choose the keys: the oldest go first beyond this
SESSION_SAFETY_TTL = 30 * 86400  # sessions are swept after 24 h idle; this only bounds a forgotten record

Session = dict[str, Any]


class SessionLimit(Exception):
    """The device already holds as many sessions as it may (decisions.md H3)."""


class SessionStore:
    _lock = threading.RLock()

    def __init__(self) -> None:
        self.cache = caches["state"]

    # -- records -------------------------------------------------------------------------------------------------

    @staticmethod
    def _key(session_id: str) -> str:
        return f"session:{session_id}"

    def get(self, session_id: str) -> Session | None:
        record = self.cache.get(self._key(session_id))
        return record if isinstance(record, dict) else None

    def create(self, record: Session, *, per_device_limit: int | None = None) -> tuple[Session, bool]:
        """Store `record` unless a session with its id exists; returns (the stored record, created).

        Raises SessionLimit when the device already has `per_device_limit` sessions (checked under the same lock,
        so concurrent creates cannot overshoot it).
        """
        session_id = record["session_id"]
        with self._lock:  # add + index update must be one step
            existing = self.get(session_id)
            if existing is not None:
                return existing, False
            index = self.cache.get("sessions:index") or {}
            if per_device_limit is not None:
                on_device = sum(1 for device_id in index.values() if device_id == record["device_id"])
                if on_device >= per_device_limit:
                    raise SessionLimit(record["device_id"])
            self.cache.set(self._key(session_id), record, timeout=SESSION_SAFETY_TTL)
            index[session_id] = record["device_id"]
            self.cache.set("sessions:index", index, timeout=None)
        return record, True

    def update(self, session_id: str, mutate: Callable[[Session], Any]) -> tuple[Session | None, Any]:
        """Apply `mutate(record)` atomically; returns (the saved record or None if absent, mutate's result).

        `mutate` may raise to abort without saving.
        """
        with self._lock:  # read-modify-write: see the module docstring
            record = self.get(session_id)
            if record is None:
                return None, None
            result = mutate(record)
            self.cache.set(self._key(session_id), record, timeout=SESSION_SAFETY_TTL)
            return record, result

    def delete(self, session_id: str) -> Session | None:
        with self._lock:
            record = self.get(session_id)
            self.cache.delete(self._key(session_id))
            index = self.cache.get("sessions:index") or {}
            if index.pop(session_id, None) is not None:
                self.cache.set("sessions:index", index, timeout=None)
            entries = self.cache.get(self._events_key(session_id)) or []
            keys = [self._event_key(session_id, i) for i, _ in entries]
            self.cache.delete_many([*keys, self._events_key(session_id)])
        return record

    def all_ids(self) -> dict[str, str]:
        """session id -> device id, for every stored session."""
        return dict(self.cache.get("sessions:index") or {})

    def for_device(self, device_id: str) -> list[Session]:
        ids = [sid for sid, dev in self.all_ids().items() if dev == device_id]
        found = self.cache.get_many([self._key(sid) for sid in ids])
        return [record for record in found.values() if isinstance(record, dict)]

    def all(self) -> list[Session]:
        found = self.cache.get_many([self._key(sid) for sid in self.all_ids()])
        return [record for record in found.values() if isinstance(record, dict)]

    # -- event backlog ---------------------------------------------------------------------------------------------

    @staticmethod
    def _events_key(session_id: str) -> str:
        return f"events:{session_id}"

    @staticmethod
    def _event_key(session_id: str, event_id: int) -> str:
        return f"event:{session_id}:{event_id}"

    def _next_event_id(self) -> int:
        if self.cache.add("events:counter", 1, timeout=None):
            return 1
        return int(self.cache.incr("events:counter"))

    def append_event(self, session_id: str, name: str, data: str, *, max_bytes: int | None = None) -> int:
        """Store one event (SSE name and JSON text) in the session's backlog, keeping the newest 1000 and, with
        `max_bytes`, no more than that many bytes of event data: the oldest events are dropped first, and the newest
        is always kept (decisions.md H3)."""
        size = len(name) + len(data.encode("utf-8"))
        with self._lock:  # the id order and the backlog order must agree
            event_id = self._next_event_id()
            entries: list[tuple[int, int]] = self.cache.get(self._events_key(session_id)) or []
            entries.append((event_id, size))
            keep = len(entries) - BACKLOG_LIMIT if len(entries) > BACKLOG_LIMIT else 0
            if max_bytes is not None:
                total = sum(s for _, s in entries[keep:])
                while total > max_bytes and keep < len(entries) - 1:
                    total -= entries[keep][1]
                    keep += 1
            dropped, entries = entries[:keep], entries[keep:]
            self.cache.set(self._event_key(session_id, event_id), (name, data), timeout=SESSION_SAFETY_TTL)
            self.cache.set(self._events_key(session_id), entries, timeout=SESSION_SAFETY_TTL)
            if dropped:
                self.cache.delete_many([self._event_key(session_id, i) for i, _ in dropped])
        return event_id

    def backlog_bytes(self, session_id: str) -> int:
        return sum(size for _, size in self.cache.get(self._events_key(session_id)) or [])

    def events_after(self, session_id: str, after: int) -> list[tuple[int, str, str]]:
        """Backlog events with an id greater than `after`, oldest first: (id, name, data)."""
        ids = [i for i, _ in (self.cache.get(self._events_key(session_id)) or []) if i > after]
        found = self.cache.get_many([self._event_key(session_id, i) for i in ids])
        out = []
        for event_id in ids:
            stored = found.get(self._event_key(session_id, event_id))
            if stored is not None:
                out.append((event_id, stored[0], stored[1]))
        return out

    def backlog_count(self) -> int:
        """Sessions that hold a stored event backlog (node-wide)."""
        keys = [self._events_key(sid) for sid in self.all_ids()]
        return sum(1 for ids in self.cache.get_many(keys).values() if ids)

    # -- idempotency keys -----------------------------------------------------------------------------------------

    @staticmethod
    def _idempotency(ttl: int) -> BoundedStore:
        return bounded_store("idempotency-keys", ttl=ttl, max_entries=MAX_IDEMPOTENCY_KEYS)

    def reserve_idempotency_key(self, key: str, ttl: int) -> bool:
        """Atomically claim `key` for `ttl` seconds; False when it is already claimed."""
        return self._idempotency(ttl).add(key)

    def release_idempotency_key(self, key: str, ttl: int) -> None:
        self._idempotency(ttl).delete(key)

    # -- housekeeping --------------------------------------------------------------------------------------------

    def claim_sweep(self, period: int) -> bool:
        """True for at most one caller per `period` seconds: the one that should sweep now."""
        return bool(self.cache.add("sessions:sweep", 1, timeout=period))


sessions = SessionStore()

"""Ephemeral relay sessions: session records, their event backlogs and idempotency keys (docs/protocol/relay.md §2,
§4.5, docs/protocol/decisions.md R1, H3).

`SessionStore` is the protocol; the implementation is chosen in settings (`GATEWAY_SESSION_STORE`, an import path):
`MemorySessionStore` here keeps plain objects in this process (no pickling on the hot path), and
relay.redis_session_store keeps them in Redis for several processes. `tests/relay/test_session_store_conformance.py`
runs the same tests against both.

A session is a plain dict of JSON values. Records are copy-on-write: `update` applies its mutation to a copy and
stores the copy only if the mutation returns, so a mutation that raises changes nothing, and a record someone holds
never changes under them. Event ids increase across all sessions.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, TypeVar

from django.conf import settings
from django.utils.module_loading import import_string

from gateway_site.boundedstore import BoundedStore, bounded_store

BACKLOG_LIMIT = 1000
MAX_IDEMPOTENCY_KEYS = 200_000  # callers choose the keys: the oldest go first beyond this
SESSION_SAFETY_TTL = 30 * 86400  # sessions are swept after 24 h idle; this only bounds a forgotten record

Session = dict[str, Any]
Event = tuple[int, str, str]  # (id, SSE event name, JSON data)
T = TypeVar("T")


class SessionLimit(Exception):
    """The device already holds as many sessions as it may (decisions.md H3)."""


APPENDED, REPLAYED, REFUSED = "appended", "replayed", "refused"


class Advance(NamedTuple):
    """One encrypted agent frame for `advance_and_append`."""

    session_id: str
    expect: Mapping[str, str]  # fields the record must hold with exactly these values
    seq: int
    now: int
    name: str
    data: str
    max_bytes: int | None = None


class Advanced(NamedTuple):
    """What `advance_and_append` did: APPENDED (with the event id and the session's followers), REPLAYED (the seq was
    not above the last one) or REFUSED (no such session, or it did not match `expect`)."""

    outcome: str
    event_id: int = 0
    followers: frozenset[str] = frozenset()


class SessionStore(Protocol):
    async def get(self, session_id: str) -> Session | None: ...

    async def create(self, record: Session, *, per_device_limit: int | None = None) -> tuple[Session, bool]:
        """Store `record` unless a session with its id exists; returns (the stored record, created). Raises
        SessionLimit when the device already has `per_device_limit` sessions (atomically: concurrent creates cannot
        overshoot it)."""
        ...

    async def update(self, session_id: str, mutate: Callable[[Session], T]) -> tuple[Session | None, T | None]:
        """Apply `mutate` to the record atomically; returns (the saved record, or None if absent, and mutate's
        result). A mutation that raises saves nothing."""
        ...

    async def delete(self, session_id: str) -> Session | None:
        """Remove the session and its backlog; returns the record it had."""
        ...

    async def for_device(self, device_id: str) -> list[Session]: ...

    async def all(self) -> list[Session]: ...

    async def count(self) -> int:
        """How many sessions the store holds."""
        ...

    async def append_event(self, session_id: str, name: str, data: str, *, max_bytes: int | None = None) -> int:
        """Add one event to the backlog and return its id. The newest 1000 events are kept and, with `max_bytes`,
        no more than that many bytes of them (oldest dropped first; the newest is always kept)."""
        ...

    async def advance_and_append(self, frames: Sequence[Advance]) -> list[Advanced]:
        """The relay's hot path for encrypted agent frames, each one atomic step, applied in order: unless every field
        of `expect` has that value in the record, REFUSED; unless `seq` is above `seq_agent_to_client`, REPLAYED; else
        the record takes `seq_agent_to_client = seq` and `updated_at = now`, the event is appended as by
        `append_event`, and its result carries the event id and the session's followers. (One round trip in Redis.)"""
        ...

    async def events_after(self, session_id: str, after: int) -> list[Event]:
        """Backlog events with an id greater than `after`, oldest first."""
        ...

    async def follow(self, session_id: str, node_id: str) -> None:
        """Record that process `node_id` has open streams of the session (its followers receive its events)."""
        ...

    async def unfollow(self, session_id: str, node_id: str) -> None: ...

    async def followers(self, session_id: str) -> frozenset[str]:
        """The processes with open streams of the session. Deleting a session keeps them: its streams still end."""
        ...

    async def backlog_bytes(self, session_id: str) -> int: ...

    async def backlog_count(self) -> int:
        """How many sessions hold a non-empty backlog."""
        ...

    async def reserve_idempotency_key(self, key: str, ttl: int) -> bool:
        """Claim `key` for `ttl` seconds; False when it is already claimed."""
        ...

    async def release_idempotency_key(self, key: str, ttl: int) -> None: ...

    async def claim_sweep(self, period: int) -> bool:
        """True for at most one caller per `period` seconds (across every process sharing the store)."""
        ...


def event_size(name: str, data: str) -> int:
    """What one event counts against SESSION_BACKLOG_BYTES."""
    return len(name) + len(data.encode("utf-8"))


class MemorySessionStore:
    """The in-process store: dicts and deques behind one lock (held only for plain dict work, never across an
    await), so the event loop and threads with loops of their own can share it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, Session] = {}
        self._by_device: dict[str, set[str]] = {}
        self._backlogs: dict[str, deque[tuple[int, str, str, int]]] = {}
        self._backlog_bytes: dict[str, int] = {}
        self._followers: dict[str, set[str]] = {}
        self._event_ids = itertools.count(1)

    async def get(self, session_id: str) -> Session | None:
        return self._records.get(session_id)

    async def create(self, record: Session, *, per_device_limit: int | None = None) -> tuple[Session, bool]:
        session_id, device_id = record["session_id"], record["device_id"]
        with self._lock:
            existing = self._records.get(session_id)
            if existing is not None:
                return existing, False
            on_device = self._by_device.setdefault(device_id, set())
            if per_device_limit is not None and len(on_device) >= per_device_limit:
                raise SessionLimit(device_id)
            stored = dict(record)
            self._records[session_id] = stored
            on_device.add(session_id)
        return stored, True

    async def update(self, session_id: str, mutate: Callable[[Session], T]) -> tuple[Session | None, T | None]:
        with self._lock:
            current = self._records.get(session_id)
            if current is None:
                return None, None
            record = dict(current)
            result = mutate(record)
            self._records[session_id] = record
        return record, result

    async def delete(self, session_id: str) -> Session | None:
        with self._lock:
            record = self._records.pop(session_id, None)
            if record is not None:
                on_device = self._by_device.get(record["device_id"])
                if on_device is not None:
                    on_device.discard(session_id)
                    if not on_device:
                        del self._by_device[record["device_id"]]
            self._backlogs.pop(session_id, None)
            self._backlog_bytes.pop(session_id, None)
        return record

    async def for_device(self, device_id: str) -> list[Session]:
        with self._lock:
            ids = list(self._by_device.get(device_id, ()))
            return [self._records[sid] for sid in ids if sid in self._records]

    async def all(self) -> list[Session]:
        with self._lock:
            return list(self._records.values())

    async def count(self) -> int:
        return len(self._records)

    async def append_event(self, session_id: str, name: str, data: str, *, max_bytes: int | None = None) -> int:
        with self._lock:  # the id order and the backlog order must agree
            return self._append(session_id, name, data, max_bytes)

    def _append(self, session_id: str, name: str, data: str, max_bytes: int | None) -> int:
        size = event_size(name, data)
        event_id = next(self._event_ids)
        backlog = self._backlogs.setdefault(session_id, deque())
        backlog.append((event_id, name, data, size))
        total = self._backlog_bytes.get(session_id, 0) + size
        while len(backlog) > BACKLOG_LIMIT or (max_bytes is not None and total > max_bytes and len(backlog) > 1):
            total -= backlog.popleft()[3]
        self._backlog_bytes[session_id] = total
        return event_id

    async def advance_and_append(self, frames: Sequence[Advance]) -> list[Advanced]:
        return [self._advance(frame) for frame in frames]

    def _advance(self, frame: Advance) -> Advanced:
        with self._lock:
            current = self._records.get(frame.session_id)
            if current is None or any(current.get(field) != value for field, value in frame.expect.items()):
                return Advanced(REFUSED)
            last = current.get("seq_agent_to_client")
            if not isinstance(last, int):
                return Advanced(REFUSED)
            if frame.seq <= last:
                return Advanced(REPLAYED)
            record = dict(current)
            record["seq_agent_to_client"] = frame.seq
            record["updated_at"] = frame.now
            self._records[frame.session_id] = record
            event_id = self._append(frame.session_id, frame.name, frame.data, frame.max_bytes)
            followers = self._followers.get(frame.session_id)
            return Advanced(APPENDED, event_id, frozenset(followers) if followers else frozenset())

    async def follow(self, session_id: str, node_id: str) -> None:
        with self._lock:
            self._followers.setdefault(session_id, set()).add(node_id)

    async def unfollow(self, session_id: str, node_id: str) -> None:
        with self._lock:
            nodes = self._followers.get(session_id)
            if nodes is not None:
                nodes.discard(node_id)
                if not nodes:
                    del self._followers[session_id]

    async def followers(self, session_id: str) -> frozenset[str]:
        with self._lock:
            return frozenset(self._followers.get(session_id, ()))

    async def events_after(self, session_id: str, after: int) -> list[Event]:
        with self._lock:
            backlog = self._backlogs.get(session_id)
            if not backlog:
                return []
            return [(event_id, name, data) for event_id, name, data, _ in backlog if event_id > after]

    async def backlog_bytes(self, session_id: str) -> int:
        return self._backlog_bytes.get(session_id, 0)

    async def backlog_count(self) -> int:
        with self._lock:
            return sum(1 for backlog in self._backlogs.values() if backlog)

    @staticmethod
    def _idempotency(ttl: int) -> BoundedStore:
        return bounded_store("idempotency-keys", ttl=ttl, max_entries=MAX_IDEMPOTENCY_KEYS)

    async def reserve_idempotency_key(self, key: str, ttl: int) -> bool:
        return self._idempotency(ttl).add(key)

    async def release_idempotency_key(self, key: str, ttl: int) -> None:
        self._idempotency(ttl).delete(key)

    async def claim_sweep(self, period: int) -> bool:
        return bounded_store("session-sweep", ttl=period, max_entries=1).add("sweep")

    def clear(self) -> None:
        """Forget everything (tests)."""
        with self._lock:
            self._records.clear()
            self._by_device.clear()
            self._backlogs.clear()
            self._backlog_bytes.clear()
            self._followers.clear()


@functools.cache
def session_store() -> SessionStore:
    """The store named by `GATEWAY_SESSION_STORE` (one per process)."""
    store: SessionStore = import_string(settings.GATEWAY_SESSION_STORE)()
    return store


class _StoreProxy:
    """`sessions`: the configured store, looked up at first use (settings are not ready at import time)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(session_store(), name)


sessions: SessionStore = _StoreProxy()

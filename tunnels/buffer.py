"""The offline buffer's store (docs/protocol/webhooks.md §3): per route, webhooks that arrived while no tunnel could
take them, oldest first, until they are delivered (tunnels.buffering) or expire.

An entry is the `tunnel.request` frame the webhook would have been sent as (without its `request_id` and
`deadline_ms`, set when it is delivered), its inspector record id (`rq_…`), its expiry (fixed when it is stored:
`ttl_seconds` of the route at that time) and two sizes: its body's, for the route's 16 MiB of bodies, and its stored
JSON's, for the bound over every route.

Two implementations of `BufferStore`: `MemoryBuffer` here (one process; lost when it restarts) and
`tunnels.buffer_redis.RedisBuffer` with STATE_BACKEND=redis (shared by every process). Both keep the same bounds:

- per route `max_requests` entries (the route's setting) and `MAX_ROUTE_BODY_BYTES` of bodies;
- all routes together `MAX_TOTAL_BYTES` of stored entries: past it a new webhook is refused (503) like one for a
  full buffer; entries already accepted (answered 202) are never dropped to make room.

Expiry is lazy: a route's expired entries go when a webhook is stored for it and when it is drained (each head is
checked before it is sent); and every store sweeps up to `SWEEP_LIMIT` routes whose every entry has expired (a
route nobody sends to or activates any more, or one deleted with its device). Removed entries are returned, so
their inspector records can become `rejected` with status 410.

A drain holds the route's lock (`lock`/`renew`/`unlock`, a token with a time to live), so only one task in one
process delivers a route's entries at a time; a lock whose holder died lapses after `LOCK_SECONDS`.
"""

from __future__ import annotations

import collections
import functools
import json
import time
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings

MAX_ROUTE_BODY_BYTES = 16 * 1024 * 1024
MAX_TOTAL_BYTES = 128 * 1024 * 1024
SWEEP_LIMIT = 20
LOCK_SECONDS = 30.0  # above the longest route deadline (10 s): renewed before each delivery


@dataclass(frozen=True)
class Entry:
    request_id: str  # the inspector record's id, `rq_…`
    expires_at: float  # unix seconds
    body_size: int
    frame: dict[str, Any]

    @functools.cached_property
    def text(self) -> str:
        return json.dumps(self.frame, separators=(",", ":"))

    @functools.cached_property
    def stored_size(self) -> int:
        return len(self.text.encode())


@dataclass(frozen=True)
class Pushed:
    stored: bool  # False: the route's buffer, or the bound over every route, is full
    expired: list[tuple[str, str]]  # (route id, record id) of the entries that expired meanwhile


class BufferStore(Protocol):
    async def push(self, route_id: str, entry: Entry, *, max_requests: int, now: float) -> Pushed:
        """Append `entry` as the route's newest unless a bound forbids it; expired entries go first."""
        ...

    async def head(self, route_id: str) -> Entry | None:
        """The route's oldest entry."""
        ...

    async def remove(self, route_id: str, request_id: str) -> bool:
        """Remove the route's oldest entry if it is `request_id`; True when it was."""
        ...

    async def expire(self, route_id: str, now: float) -> list[str]:
        """Remove the route's expired entries at its head; their record ids."""
        ...

    async def count(self, route_id: str) -> int: ...

    async def drop_route(self, route_id: str) -> list[str]:
        """Forget every entry of the route (it was deleted); their record ids."""
        ...

    async def stored_bytes(self) -> int: ...

    async def lock(self, route_id: str, token: str, seconds: float) -> bool: ...

    async def renew(self, route_id: str, token: str, seconds: float) -> bool: ...

    async def unlock(self, route_id: str, token: str) -> None: ...


class MemoryBuffer:
    """Entries in this process: per route a deque, and each route's latest expiry for the sweep."""

    def __init__(
        self, *, max_route_body_bytes: int = MAX_ROUTE_BODY_BYTES, max_total_bytes: int = MAX_TOTAL_BYTES
    ) -> None:
        self.max_route_body_bytes = max_route_body_bytes
        self.max_total_bytes = max_total_bytes
        self._queues: dict[str, collections.deque[Entry]] = {}
        self._bodies: dict[str, int] = {}
        self._latest: dict[str, float] = {}  # route id -> the latest expiry of its entries
        self._total = 0
        self._locks: dict[str, tuple[str, float]] = {}

    def _take_head(self, route_id: str) -> Entry:
        queue = self._queues[route_id]
        entry = queue.popleft()
        self._bodies[route_id] -= entry.body_size
        self._total -= entry.stored_size
        if not queue:
            del self._queues[route_id], self._bodies[route_id], self._latest[route_id]
        return entry

    def _sweep(self, now: float) -> list[tuple[str, str]]:
        dead = [route_id for route_id, latest in self._latest.items() if latest <= now][:SWEEP_LIMIT]
        return [(route_id, request_id) for route_id in dead for request_id in self._drop(route_id)]

    def _drop(self, route_id: str) -> list[str]:
        taken: list[str] = []
        while route_id in self._queues:
            taken.append(self._take_head(route_id).request_id)
        return taken

    async def push(self, route_id: str, entry: Entry, *, max_requests: int, now: float) -> Pushed:
        expired = self._sweep(now) + [(route_id, rid) for rid in await self.expire(route_id, now)]
        queue = self._queues.get(route_id, ())
        if (
            len(queue) >= max_requests
            or self._bodies.get(route_id, 0) + entry.body_size > self.max_route_body_bytes
            or self._total + entry.stored_size > self.max_total_bytes
        ):
            return Pushed(False, expired)
        self._queues.setdefault(route_id, collections.deque()).append(entry)
        self._bodies[route_id] = self._bodies.get(route_id, 0) + entry.body_size
        self._latest[route_id] = max(self._latest.get(route_id, 0.0), entry.expires_at)
        self._total += entry.stored_size
        return Pushed(True, expired)

    async def head(self, route_id: str) -> Entry | None:
        queue = self._queues.get(route_id)
        return queue[0] if queue else None

    async def remove(self, route_id: str, request_id: str) -> bool:
        queue = self._queues.get(route_id)
        if not queue or queue[0].request_id != request_id:
            return False
        self._take_head(route_id)
        return True

    async def expire(self, route_id: str, now: float) -> list[str]:
        taken: list[str] = []
        while (queue := self._queues.get(route_id)) and queue[0].expires_at <= now:
            taken.append(self._take_head(route_id).request_id)
        return taken

    async def count(self, route_id: str) -> int:
        return len(self._queues.get(route_id, ()))

    async def drop_route(self, route_id: str) -> list[str]:
        return self._drop(route_id)

    async def stored_bytes(self) -> int:
        return self._total

    async def lock(self, route_id: str, token: str, seconds: float) -> bool:
        held = self._locks.get(route_id)
        if held is not None and held[0] != token and held[1] > time.monotonic():
            return False
        self._locks[route_id] = (token, time.monotonic() + seconds)
        return True

    async def renew(self, route_id: str, token: str, seconds: float) -> bool:
        held = self._locks.get(route_id)
        if held is None or held[0] != token:
            return False
        self._locks[route_id] = (token, time.monotonic() + seconds)
        return True

    async def unlock(self, route_id: str, token: str) -> None:
        held = self._locks.get(route_id)
        if held is not None and held[0] == token:
            del self._locks[route_id]


_store: list[BufferStore] = []


def store() -> BufferStore:
    """This process's buffer: in Redis when the state is shared (docs/scaling.md)."""
    if not _store:
        if settings.GATEWAY.state_backend == "redis":
            from tunnels.buffer_redis import RedisBuffer

            _store.append(RedisBuffer())
        else:
            _store.append(MemoryBuffer())
    return _store[0]

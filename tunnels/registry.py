"""Live tunnel sockets of this process and the webhook requests waiting for their answers.

All of it exists only to deliver: a webhook request is written to the socket that holds its route and awaited on a
future that the socket's `tunnel.response` resolves. With several processes, a request can come from ingress in
another process: this process then remembers which process waits for it (`forwarded`), to hand the answer back.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

MAX_INFLIGHT = 10_000  # process-wide safety net; the fair shares are per route and per owner (decisions.md H3)
FORWARD_TTL_SECONDS = 15.0  # above the longest route deadline (10 s, docs/protocol/tunnels.md §2)


class TunnelSocket(Protocol):
    device_id: str
    owner_uid: str
    connection_id: str
    routes: set[str]

    async def send_frame(self, frame: dict[str, Any]) -> bool: ...

    async def close_replaced(self) -> None: ...

    async def route_deactivated(self, route_id: str, reason: str) -> None: ...


class TunnelRegistry:
    def __init__(self) -> None:
        self._by_device: dict[str, TunnelSocket] = {}
        self._route_owner: dict[str, TunnelSocket] = {}

    def register(self, socket: TunnelSocket) -> TunnelSocket | None:
        previous = self._by_device.get(socket.device_id)
        self._by_device[socket.device_id] = socket
        return previous if previous is not socket else None

    def unregister(self, socket: TunnelSocket) -> bool:
        for route_id in list(socket.routes):
            self.unbind(route_id, socket)
        if self._by_device.get(socket.device_id) is socket:
            del self._by_device[socket.device_id]
            return True
        return False

    def bind(self, route_id: str, socket: TunnelSocket) -> TunnelSocket | None:
        """Route `route_id` to `socket`; returns the socket that held it before (if another)."""
        previous = self._route_owner.get(route_id)
        self._route_owner[route_id] = socket
        socket.routes.add(route_id)
        if previous is not None and previous is not socket:
            previous.routes.discard(route_id)
            return previous
        return None

    def unbind(self, route_id: str, socket: TunnelSocket | None = None) -> TunnelSocket | None:
        holder = self._route_owner.get(route_id)
        if holder is None or (socket is not None and holder is not socket):
            return None
        del self._route_owner[route_id]
        holder.routes.discard(route_id)
        return holder

    def holder(self, route_id: str) -> TunnelSocket | None:
        return self._route_owner.get(route_id)

    def routes_of_device(self, device_id: str) -> list[str]:
        """The routes active on the device's tunnel socket in this process."""
        socket = self._by_device.get(device_id)
        return sorted(socket.routes) if socket is not None else []

    def count(self) -> int:
        return len(self._by_device)

    def count_for_owner(self, owner_uid: str, *, excluding_device: str = "") -> int:
        return sum(1 for s in self._by_device.values() if s.owner_uid == owner_uid and s.device_id != excluding_device)


@dataclass
class Inflight:
    request_id: str
    device_id: str
    connection_id: str
    future: asyncio.Future[dict[str, Any]]
    route_id: str = ""
    owner_uid: str = ""
    started: float = field(default_factory=time.monotonic)


class InflightFull(Exception):
    """No slot for another webhook: `scope` is "route", "owner" or "node"."""

    def __init__(self, scope: str) -> None:
        super().__init__(scope)
        self.scope = scope


class InflightRequests:
    """Webhooks waiting for their tunnel's answer, counted per route and per owner so that one silent tunnel cannot
    take every slot (decisions.md H3)."""

    def __init__(self) -> None:
        self._by_id: dict[str, Inflight] = {}
        self._per_route: dict[str, int] = {}
        self._per_owner: dict[str, int] = {}

    def add(
        self,
        request_id: str,
        device_id: str,
        connection_id: str,
        *,
        route_id: str = "",
        owner_uid: str = "",
        route_limit: int = MAX_INFLIGHT,
        owner_limit: int = MAX_INFLIGHT,
    ) -> Inflight:
        """Track a request sent down socket `connection_id`; raises InflightFull when a share is used up."""
        if self._per_route.get(route_id, 0) >= route_limit:
            raise InflightFull("route")
        if self._per_owner.get(owner_uid, 0) >= owner_limit:
            raise InflightFull("owner")
        if len(self._by_id) >= MAX_INFLIGHT:
            raise InflightFull("node")
        future = asyncio.get_running_loop().create_future()
        entry = Inflight(request_id, device_id, connection_id, future, route_id, owner_uid)
        self._by_id[request_id] = entry
        self._per_route[route_id] = self._per_route.get(route_id, 0) + 1
        self._per_owner[owner_uid] = self._per_owner.get(owner_uid, 0) + 1
        return entry

    def get(self, request_id: str) -> Inflight | None:
        return self._by_id.get(request_id)

    def pop(self, request_id: str) -> Inflight | None:
        entry = self._by_id.pop(request_id, None)
        if entry is not None:
            _decrement(self._per_route, entry.route_id)
            _decrement(self._per_owner, entry.owner_uid)
        return entry

    def fail_connection(self, connection_id: str) -> None:
        """A tunnel socket went away: requests sent down it fail now instead of at their deadline."""
        for request_id, entry in list(self._by_id.items()):
            if entry.connection_id == connection_id and not entry.future.done():
                entry.future.set_exception(ConnectionError("tunnel closed"))
                self.pop(request_id)

    def count_for_route(self, route_id: str) -> int:
        return self._per_route.get(route_id, 0)

    def count_for_owner(self, owner_uid: str) -> int:
        return self._per_owner.get(owner_uid, 0)

    def count(self) -> int:
        return len(self._by_id)


def _decrement(counts: dict[str, int], key: str) -> None:
    left = counts.get(key, 0) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)


@dataclass(frozen=True)
class Forwarded:
    """A webhook request written to a socket here for ingress in process `origin`."""

    origin: str
    device_id: str
    connection_id: str
    expires: float


class ForwardedRequests:
    """Requests of other processes' ingress waiting on this process's tunnel sockets. An entry goes when the answer
    is handed back, when its socket goes, or FORWARD_TTL_SECONDS after it came, past any route's deadline (the sender
    has answered 504 by then)."""

    def __init__(self) -> None:
        self._by_id: dict[str, Forwarded] = {}

    def add(self, request_id: str, origin: str, device_id: str, connection_id: str) -> bool:
        """Remember the request; False when MAX_INFLIGHT requests are already waiting here."""
        now = time.monotonic()
        while self._by_id:  # oldest first: every entry lives equally long, so the expired ones lead
            oldest = next(iter(self._by_id))
            if self._by_id[oldest].expires >= now:
                break
            del self._by_id[oldest]
        if len(self._by_id) >= MAX_INFLIGHT:
            return False
        self._by_id[request_id] = Forwarded(origin, device_id, connection_id, now + FORWARD_TTL_SECONDS)
        return True

    def get(self, request_id: str) -> Forwarded | None:
        entry = self._by_id.get(request_id)
        return entry if entry is not None and entry.expires >= time.monotonic() else None

    def pop(self, request_id: str) -> Forwarded | None:
        entry = self._by_id.pop(request_id, None)
        return entry if entry is not None and entry.expires >= time.monotonic() else None

    def take_connection(self, connection_id: str) -> dict[str, list[str]]:
        """Forget the requests sent down socket `connection_id`; returns their ids by origin process."""
        taken: dict[str, list[str]] = {}
        for request_id, entry in list(self._by_id.items()):
            if entry.connection_id == connection_id:
                del self._by_id[request_id]
                taken.setdefault(entry.origin, []).append(request_id)
        return taken

    def count(self) -> int:
        return len(self._by_id)


tunnels = TunnelRegistry()
inflight = InflightRequests()
forwarded = ForwardedRequests()

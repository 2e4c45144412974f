"""The live agent sockets of this process (the one allowed in-process registry: it exists only to deliver frames).

Delivery to an agent must learn synchronously whether the write succeeded (docs/protocol/relay.md §5.2), which a
channel-layer broadcast cannot tell; so a sender in this process awaits the socket object found here.
"""

from __future__ import annotations

from typing import Any, Protocol


class AgentSocket(Protocol):
    device_id: str
    owner_uid: str
    connection_id: str

    async def send_frame(self, frame: dict[str, Any]) -> bool: ...

    async def close_replaced(self) -> None: ...

    async def close_deleted(self) -> None: ...

    async def close_disconnected(self) -> None: ...


class AgentRegistry:
    def __init__(self) -> None:
        self._by_device: dict[str, AgentSocket] = {}

    def register(self, socket: AgentSocket) -> AgentSocket | None:
        """Make `socket` the device's socket; returns the one it replaces, if any."""
        previous = self._by_device.get(socket.device_id)
        self._by_device[socket.device_id] = socket
        return previous if previous is not socket else None

    def unregister(self, socket: AgentSocket) -> bool:
        """Forget `socket` only if it is still the device's socket (a replaced socket's teardown is a no-op)."""
        if self._by_device.get(socket.device_id) is socket:
            del self._by_device[socket.device_id]
            return True
        return False

    def get(self, device_id: str) -> AgentSocket | None:
        return self._by_device.get(device_id)

    def count(self) -> int:
        return len(self._by_device)

    def devices(self) -> list[str]:
        return list(self._by_device)

    def count_for_owner(self, owner_uid: str, *, excluding_device: str = "") -> int:
        return sum(1 for s in self._by_device.values() if s.owner_uid == owner_uid and s.device_id != excluding_device)


agents = AgentRegistry()


class StreamEvent:
    """One stored session event as handed to this process's streams: the same object goes to every stream of the
    session, so its SSE bytes are rendered once (by the first stream that writes it, into `wire`) and shared."""

    __slots__ = ("data", "event_id", "name", "size", "wire")

    def __init__(self, event_id: int, name: str, data: str) -> None:
        self.event_id, self.name, self.data = event_id, name, data
        self.size = len(name) + len(data)  # what it counts against a reader's budget while queued
        self.wire: bytes | None = None

    def __repr__(self) -> str:
        return f"StreamEvent({self.event_id!r}, {self.name!r}, {self.data!r})"


class StreamSubscriber(Protocol):
    uid: str
    device_id: str

    def offer(self, event: StreamEvent) -> None: ...

    def end(self, reason: str | None) -> None: ...


class SessionSubscribers:
    """The open session event streams of this process, by session id."""

    def __init__(self) -> None:
        self._by_session: dict[str, set[StreamSubscriber]] = {}

    def add(self, session_id: str, subscriber: StreamSubscriber) -> None:
        self._by_session.setdefault(session_id, set()).add(subscriber)

    def remove(self, session_id: str, subscriber: StreamSubscriber) -> None:
        subscribers = self._by_session.get(session_id)
        if subscribers is not None:
            subscribers.discard(subscriber)
            if not subscribers:
                del self._by_session[session_id]

    def of(self, session_id: str) -> list[StreamSubscriber]:
        return list(self._by_session.get(session_id, ()))

    def has(self, session_id: str) -> bool:
        return session_id in self._by_session

    def count(self) -> int:
        return sum(len(s) for s in self._by_session.values())


streams = SessionSubscribers()

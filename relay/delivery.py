"""The delivery seam: frames to agent sockets, events to session streams, notifications to device-event streams
(docs/architecture.md, "Delivery across processes").

A receiver in this process is reached directly (relay.registry), without a channel-layer hop: that is all the default
memory mode ever does. With STATE_BACKEND=redis the receiver may live in another process, which the seam finds in
shared state and reaches through that process's inbox (gateway_site.nodes):

- an agent socket: presence names its address; a write whose outcome the caller needs (docs/protocol/relay.md §5.2,
  `agent_unavailable`) is a request to the socket's process, counted as failed without an answer within 2 s;
- session streams: a process with open streams of a session is one of the session's followers, recorded in the session
  store next to its backlog (the hot path's one atomic step returns them with the event id); a publisher serves its
  own streams directly and sends one message to each other follower's inbox (events keep their order per publisher);
- a replaced socket (`replaced_by_new_connection`) is closed by the process presence names, if it still holds that
  very socket, and so is one an operator disconnects; a deleted device's socket is closed by whichever process holds
  it.

A socket is named by its address (gateway_site.nodes.address), unique across processes: presence records it, and so
does a session for the socket its handshake request went to.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Iterable
from typing import Any

from channels.layers import get_channel_layer

from gateway_site import nodes
from gateway_site.nodes import inbox
from relay.groups import user_group
from relay.registry import AgentSocket, StreamEvent, StreamSubscriber, agents, streams
from relay.session_store import sessions
from relay.stores import presence

AGENT_SEND = "relay.agent_send"
AGENT_REPLACED = "relay.agent_replaced"
AGENT_DISCONNECT = "relay.agent_disconnect"
DEVICE_DELETED = "relay.device_deleted"
SESSION_EVENTS = "relay.session_events"
SESSION_END = "relay.session_end"


async def _holder(device_id: str) -> str | None:
    """The address of the device's agent socket in any process, from presence (agent_socket records the address)."""
    record = await presence.get(device_id)
    if record is None or not record.online():
        return None
    return record.connection_id


# -- agent sockets -----------------------------------------------------------------------------------------------------


async def send_to_device(device_id: str, frame: dict[str, Any]) -> bool:
    """Write one frame to the device's agent socket; False when there is none or the write failed."""
    socket = agents.get(device_id)
    if socket is not None:
        return await socket.send_frame(frame)
    if not nodes.shared():
        return False
    address = await _holder(device_id)
    return address is not None and await _send_remote(device_id, address, frame)


async def agent_connection(device_id: str) -> str | None:
    """The address of the device's agent socket (this process's first), None when it has none."""
    socket = agents.get(device_id)
    if socket is not None:
        return nodes.address(socket.connection_id)
    if not nodes.shared():
        return None
    return await _holder(device_id)


async def send_to_connection(device_id: str, address: str, frame: dict[str, Any]) -> bool:
    """Write one frame to the device's agent socket only if it is still the socket at `address`."""
    connection_id, node_id = nodes.split(address)
    if nodes.elsewhere(node_id):
        return await _send_remote(device_id, address, frame)
    socket = agents.get(device_id)
    if socket is None or socket.connection_id != connection_id:
        return False
    return await socket.send_frame(frame)


async def _send_remote(device_id: str, address: str, frame: dict[str, Any]) -> bool:
    """Ask the process at `address` to write the frame to that socket; False without a yes within the bound."""
    connection_id, node_id = nodes.split(address)
    if not nodes.elsewhere(node_id):
        return False  # presence names a socket of this process that is gone
    message = {"type": AGENT_SEND, "device_id": device_id, "connection_id": connection_id, "frame": frame}
    return await inbox.request(node_id, message) is True


async def agent_replaced(device_id: str, previous: AgentSocket | None) -> None:
    """A new socket has just taken the device over (call it before presence names the new socket): the socket it
    replaces closes with `replaced_by_new_connection`, whether `previous` (this process's) or the one presence names
    in another process."""
    if previous is not None:
        await previous.close_replaced()
        return
    if not nodes.shared():
        return
    address = await _holder(device_id)
    if address is None:
        return
    connection_id, node_id = nodes.split(address)
    if nodes.elsewhere(node_id):
        await inbox.send(node_id, {"type": AGENT_REPLACED, "device_id": device_id, "connection_id": connection_id})


async def close_device(device_id: str) -> None:
    """The device was deleted: close its agent socket, in whichever process holds it."""
    socket = agents.get(device_id)
    if socket is not None:
        await socket.close_deleted()
    if nodes.shared():
        await inbox.broadcast({"type": DEVICE_DELETED, "device_id": device_id})


async def disconnect_agent(device_id: str) -> bool:
    """An operator disconnects the device's agent socket (`1008 disconnected_by_operator`, docs/protocol/relay.md
    §5.3), in whichever process holds it; False when no process holds one (as far as presence knows)."""
    socket = agents.get(device_id)
    if socket is not None:
        await socket.close_disconnected()
        return True
    if not nodes.shared():
        return False
    address = await _holder(device_id)
    if address is None:
        return False
    connection_id, node_id = nodes.split(address)
    if not nodes.elsewhere(node_id):
        return False
    message = {"type": AGENT_DISCONNECT, "device_id": device_id, "connection_id": connection_id}
    return await inbox.send(node_id, message)


# -- device-event streams (channel-layer groups per user: they reach every process already) --------------------------


async def notify_users(uids: Iterable[str], *, device_id: str, reason: str) -> None:
    """Wake the device-event streams of `uids` (their visible devices or statuses changed)."""
    layer = get_channel_layer()
    if layer is None:
        return
    for uid in set(uids):
        await layer.group_send(
            user_group(uid), {"type": "relay.devices_changed", "device_id": device_id, "reason": reason}
        )


async def access_ended(*, uids: Iterable[str], device_id: str, reason: str) -> None:
    """These users lost access to the device (docs/protocol/decisions.md R4 `reason`: grant_revoked, grant_left,
    device_deleted).

    Their device events streams drop it at once; their session streams on it end with `session.ended`.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    for uid in {u for u in uids if u}:
        await layer.group_send(
            user_group(uid), {"type": "shares.access_ended", "device_id": device_id, "reason": reason}
        )


# -- session streams -----------------------------------------------------------------------------------------------


_membership_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()
_following: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, set[str]] = weakref.WeakKeyDictionary()


async def subscribe(session_id: str, subscriber: StreamSubscriber) -> None:
    """Open `subscriber` to the session's events, from this process and (Redis mode) from every other one."""
    streams.add(session_id, subscriber)
    if nodes.shared():
        await _follow(session_id)


async def unsubscribe(session_id: str, subscriber: StreamSubscriber) -> None:
    streams.remove(session_id, subscriber)
    if nodes.shared():
        with contextlib.suppress(Exception):  # a stale entry only costs a message nobody here reads
            await _follow(session_id)


async def _follow(session_id: str) -> None:
    """Keep this process among the session's followers exactly while it has streams of the session (one change at a
    time, so a join and a leave racing each other settle on what the registry holds)."""
    loop = asyncio.get_running_loop()
    lock = _membership_locks.setdefault(loop, asyncio.Lock())
    following = _following.setdefault(loop, set())
    async with lock:
        wanted = streams.has(session_id)
        if wanted and session_id not in following:
            inbox.start()  # the followers' messages arrive in this process's inbox
            await sessions.follow(session_id, inbox.node_id)
            following.add(session_id)
        elif not wanted and session_id in following:
            following.discard(session_id)
            await sessions.unfollow(session_id, inbox.node_id)


async def publish_session_event(
    session_id: str, event_id: int, name: str, data: str, *, followers: frozenset[str] | None = None
) -> None:
    """Hand one stored event to every open stream of the session (those here without waiting on any); `followers`
    as the store returned them with the event, looked up when not given."""
    if nodes.shared() and followers is None:
        followers = await sessions.followers(session_id)
    await publish_session_events([(session_id, event_id, name, data, followers or frozenset())])


async def publish_session_events(events: list[tuple[str, int, str, str, frozenset[str]]]) -> None:
    """Stored events `(session id, event id, name, data, followers)` in order: each to the streams here at once, and
    to each other follower in one message for all of them (Redis mode)."""
    remote: dict[str, list[list[Any]]] = {}
    for session_id, event_id, name, data, followers in events:
        _offer_local(session_id, event_id, name, data)
        for node_id in followers:
            if nodes.elsewhere(node_id):
                remote.setdefault(node_id, []).append([session_id, event_id, name, data])
    for node_id, batch in remote.items():
        await inbox.send(node_id, {"type": SESSION_EVENTS, "events": batch})


def _offer_local(session_id: str, event_id: int, name: str, data: str) -> None:
    """One event to the session's streams in this process: one shared StreamEvent, so its bytes are rendered once."""
    subscribers = streams.of(session_id)
    if subscribers:
        event = StreamEvent(event_id, name, data)
        for subscriber in subscribers:
            subscriber.offer(event)


async def end_session_streams(session_id: str, reason: str | None, *, uid: str | None = None) -> None:
    """End the session's streams (only `uid`'s when given); with a reason they first get `session.ended` (R4)."""
    _end_local(session_id, reason, uid)
    if nodes.shared():
        message = {"type": SESSION_END, "session_id": session_id, "reason": reason, "uid": uid}
        await _to_followers(session_id, message, None)


async def _to_followers(session_id: str, message: dict[str, Any], followers: frozenset[str] | None) -> None:
    if followers is None:
        followers = await sessions.followers(session_id)
    for node_id in followers:
        if nodes.elsewhere(node_id):
            await inbox.send(node_id, message)


def _end_local(session_id: str, reason: str | None, uid: str | None) -> None:
    for subscriber in streams.of(session_id):
        if uid is None or subscriber.uid == uid:
            subscriber.end(reason)


# -- what other processes ask of this one (Redis mode) ---------------------------------------------------------------


async def _on_agent_send(message: dict[str, Any]) -> bool:
    socket = agents.get(str(message.get("device_id")))
    frame = message.get("frame")
    if socket is None or socket.connection_id != message.get("connection_id") or not isinstance(frame, dict):
        return False
    return await socket.send_frame(frame)


async def _on_agent_replaced(message: dict[str, Any]) -> None:
    socket = agents.get(str(message.get("device_id")))
    if socket is not None and socket.connection_id == message.get("connection_id"):
        await socket.close_replaced()


async def _on_agent_disconnect(message: dict[str, Any]) -> None:
    socket = agents.get(str(message.get("device_id")))
    if socket is not None and socket.connection_id == message.get("connection_id"):
        await socket.close_disconnected()


async def _on_device_deleted(message: dict[str, Any]) -> None:
    socket = agents.get(str(message.get("device_id")))
    if socket is not None:
        await socket.close_deleted()


async def _on_session_events(message: dict[str, Any]) -> None:
    batch = message.get("events")
    for entry in batch if isinstance(batch, list) else ():
        if isinstance(entry, list) and len(entry) == 4:
            session_id, event_id, name, data = entry
            if isinstance(event_id, int) and isinstance(name, str) and isinstance(data, str):
                _offer_local(str(session_id), event_id, name, data)


async def _on_session_end(message: dict[str, Any]) -> None:
    reason, uid = message.get("reason"), message.get("uid")
    _end_local(
        str(message.get("session_id")),
        reason if isinstance(reason, str) else None,
        uid if isinstance(uid, str) else None,
    )


def listen() -> None:
    """Serve the relay's messages from other processes (called once, when the app loads)."""
    inbox.handle(AGENT_SEND, _on_agent_send)
    inbox.handle(AGENT_REPLACED, _on_agent_replaced)
    inbox.handle(AGENT_DISCONNECT, _on_agent_disconnect)
    inbox.handle(DEVICE_DELETED, _on_device_deleted)
    inbox.handle(SESSION_EVENTS, _on_session_events, ordered=True)
    inbox.handle(SESSION_END, _on_session_end, ordered=True)

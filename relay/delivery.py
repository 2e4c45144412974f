"""The delivery seam: frames to agent sockets and notifications to stream subscribers.

A receiver in this process is reached directly (relay.registry); the channel layer carries only what must cross
processes or reach many streams.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from channels.layers import get_channel_layer

from relay.groups import user_group
from relay.registry import agents, streams


async def send_to_device(device_id: str, frame: dict[str, Any]) -> bool:
    """Write one frame to the device's agent socket; False when there is none or the write failed."""
    socket = agents.get(device_id)
    if socket is None:
        return False
    return await socket.send_frame(frame)


def agent_connection(device_id: str) -> str | None:
    """The connection id of the device's agent socket in this process, None when it has none."""
    socket = agents.get(device_id)
    return socket.connection_id if socket is not None else None


async def send_to_connection(device_id: str, connection_id: str, frame: dict[str, Any]) -> bool:
    """Write one frame to the device's agent socket only if it is still connection `connection_id`."""
    socket = agents.get(device_id)
    if socket is None or socket.connection_id != connection_id:
        return False
    return await socket.send_frame(frame)


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


async def close_device(device_id: str) -> None:
    """Close the device's agent socket in this process (its device was deleted)."""
    socket = agents.get(device_id)
    if socket is not None:
        await socket.close_deleted()


def publish_session_event(session_id: str, event_id: int, name: str, data: str) -> None:
    """Hand one stored event to every open stream of the session in this process (never blocks)."""
    for subscriber in streams.of(session_id):
        subscriber.offer(event_id, name, data)


def end_session_streams(session_id: str, reason: str | None, *, uid: str | None = None) -> None:
    """End the session's streams (only `uid`'s when given); with a reason they first get `session.ended` (R4)."""
    for subscriber in streams.of(session_id):
        if uid is None or subscriber.uid == uid:
            subscriber.end(reason)

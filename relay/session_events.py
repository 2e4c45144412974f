"""Services over a session's event stream (docs/protocol/relay.md §4.5, docs/protocol/decisions.md R4): publishing an
event, and ending streams when sessions go (idle sweep, device deletion)."""

from __future__ import annotations

from django.conf import settings

from relay import delivery, sessions
from relay.session_store import sessions as store


async def session_event_publish(session_id: str, name: str, data: str) -> int:
    """Append one event to the session's backlog, then hand it to its open streams; returns the event id."""
    event_id = await store.append_event(session_id, name, data, max_bytes=settings.GATEWAY.session_backlog_bytes)
    await delivery.publish_session_event(session_id, event_id, name, data)
    return event_id


async def sessions_sweep_due() -> None:
    """Run the idle sweep if it is due (at most every 5 minutes); streams of swept sessions end with `expired`."""
    for swept in await sessions.sweep_if_due():
        await delivery.end_session_streams(swept["session_id"], "expired")


async def sessions_device_deleted(device_id: str) -> None:
    """The device is gone: its sessions go too, and their streams end with `device_deleted` (decisions.md D1)."""
    for session_id in await sessions.sessions_of_device_delete(device_id):
        await delivery.end_session_streams(session_id, "device_deleted")


async def sessions_of_user_end(uid: str, reason: str) -> list[str]:
    """An operator revoked `uid` (docs/operations.md): the sessions on the user's devices and those the user opened
    are deleted, and their streams end with `reason` (decisions.md R4); returns their ids."""
    ended = []
    for session in await store.all():
        mine = uid in (session.get("owner_uid"), session.get("created_by"))
        if mine and await store.delete(session["session_id"]) is not None:
            ended.append(session["session_id"])
            await delivery.end_session_streams(session["session_id"], reason)
    return ended

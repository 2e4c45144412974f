"""Relay sessions (docs/protocol/relay.md §2 with docs/protocol/decisions.md H5): their states, who may use them,
and their lifetime. The operations on them are services of their own: relay.handshake, relay.messaging,
relay.agent_frames and relay.session_events.

Sessions live in the ephemeral store (relay.session_store); nothing here reads the database except a collaborator's
grant check, which is cached (relay.access).
"""

from __future__ import annotations

import json
import time
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from gateway_site.auth import Principal
from gateway_site.errors import Forbidden, NotFound
from gateway_site.ids import canonical_email
from relay import access
from relay.session_store import Session, sessions
from relay.stores import presence

__all__ = ["Session", "sessions"]

PENDING_ACK = "pending_agent_ack"
PENDING_CONNECTION = "pending_agent_connection"
ACKNOWLEDGED = "agent_acknowledged"
AGENT_ERROR = "agent_error"
IDLE_EXPIRY_SECONDS = 24 * 3600
SWEEP_PERIOD_SECONDS = 300


def unix_now() -> int:
    return int(time.time())


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)  # built once: one per frame costs


def dumps(data: dict[str, Any]) -> str:
    """Compact JSON as the relay writes events."""
    return _ENCODER.encode(data)


# -- membership (decisions.md H5) ----------------------------------------------------------------------------------


def owner_member(session: Session, principal: Principal) -> bool:
    """Membership that needs no database: the session's owner by uid, or, in demo mode, by canonical email (the
    fallback that lets client-init in must also let the session be read, docs/protocol/relay.md §2 [Q])."""
    if session["owner_uid"] == principal.uid:
        return True
    if settings.GATEWAY.auth_mode == "demo" and session.get("owner_email"):
        return bool(canonical_email(principal.email) == session["owner_email"])
    return False


def is_member(session: Session, principal: Principal) -> bool:
    """decisions.md H5: the device's owner, or the user who created the session while they still hold an active
    grant on the device (cached, no DB per frame). Other collaborators of the device are not members."""
    if owner_member(session, principal):
        return True
    return session.get("created_by") == principal.uid and access.collaborator_access_cached(
        session["device_id"], principal.uid
    )


async def ensure_member(session: Session, principal: Principal) -> None:
    """403 `forbidden` unless `principal` is a member (decisions.md H5); only a creator's grant check, at most once a
    minute, reads the database (in a thread)."""
    if owner_member(session, principal):
        return
    if session.get("created_by") == principal.uid and await sync_to_async(access.collaborator_access_cached)(
        session["device_id"], principal.uid
    ):
        return
    raise Forbidden("forbidden")


# -- lifetime and counters -----------------------------------------------------------------------------------------


async def pending_sessions(device_id: str) -> list[Session]:
    """Sessions of the device still waiting for the agent: flushed to a newly connected socket."""
    return [s for s in await sessions.for_device(device_id) if s["status"] in (PENDING_ACK, PENDING_CONNECTION)]


async def sessions_sweep(*, now: int | None = None) -> list[Session]:
    """Delete sessions idle for 24 h, except live ones whose device is connected; returns the deleted ones."""
    current = unix_now() if now is None else now
    swept = []
    for session in await sessions.all():
        if not await expired(session, current):
            continue
        if await sessions.delete(session["session_id"]) is not None:
            swept.append(session)
    return swept


async def sweep_if_due() -> list[Session]:
    """Sweep at most once per 5 minutes across all callers (client-init and stream heartbeats trigger it)."""
    if not await sessions.claim_sweep(SWEEP_PERIOD_SECONDS):
        return []
    return await sessions_sweep()


def idle(session: Session, now: int) -> bool:
    return bool(now - session["updated_at"] >= IDLE_EXPIRY_SECONDS)


async def expired(session: Session, now: int | None = None) -> bool:
    """Idle for 24 h and not a live session of a connected device (docs/protocol/relay.md §2 lifetime)."""
    current = unix_now() if now is None else now
    if not idle(session, current):
        return False
    record = await presence.get(session["device_id"])
    connected = record is not None and record.online(current)
    return not (session["status"] in (ACKNOWLEDGED, PENDING_ACK, PENDING_CONNECTION) and connected)


async def load(session_id: str) -> Session:
    """The session, or 404 `session not found` — also for one past its idle expiry that no sweep has reached yet
    (sweeps run at most every 5 minutes, when a request or a stream comes by; expiry must not wait for them)."""
    session = await sessions.get(session_id)
    if session is not None and idle(session, unix_now()) and await expired(session):  # presence only when idle
        await sessions.delete(session_id)
        session = None
    if session is None:
        raise NotFound("session not found")
    return session


async def sessions_of_device_delete(device_id: str) -> list[str]:
    """The device was deleted: its sessions go too; returns their ids."""
    ids = [s["session_id"] for s in await sessions.for_device(device_id)]
    for session_id in ids:
        await sessions.delete(session_id)
    return ids


async def health_counts(principal: Principal) -> dict[str, int]:
    """`sessions` (owned by the caller as device owner) and node-wide `event_backlogs`."""
    owned = sum(1 for s in await sessions.all() if s["owner_uid"] == principal.uid)
    return {"sessions": owned, "event_backlogs": await sessions.backlog_count()}


async def metrics_gauges() -> dict[str, float]:
    """`sessions_live` of /metrics (gateway_site.metrics): the sessions in the store, which in Redis mode is the
    whole deployment's (every process reports the same number)."""
    return {"sessions_live": await sessions.count()}

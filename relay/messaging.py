"""`POST /gateway/v1/sessions/{id}/messages` as one service (docs/protocol/relay.md §4.4, docs/protocol/decisions.md
R1): membership, the envelope and replay checks, the atomic seq commit, the write to the agent socket, and the undo
when the agent cannot take the message.

The hot path: it touches only the ephemeral store and the membership cache, never the database except a
collaborator's first check in a minute (in a thread).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from gateway_site.auth import Principal
from gateway_site.errors import ApiError, BadRequest, Conflict, NotFound
from relay import delivery, envelope, session_frames
from relay.frames import alias
from relay.session_render import message_response
from relay.session_store import Session
from relay.sessions import ACKNOWLEDGED, ensure_member, load, sessions, unix_now


async def session_message_post(
    *, principal: Principal, session_id: str, idempotency_key: str | None, body: dict[str, Any]
) -> dict[str, Any]:
    """Relay one client message to the agent; returns the `202` body. `idempotency_key` is the parsed header."""
    session = await load(session_id)
    await ensure_member(session, principal)
    outgoing = await _prepare(principal=principal, session=session, header_key=idempotency_key, body=body)
    if not await delivery.send_to_device(outgoing.session["device_id"], outgoing.frame):
        await _undo(outgoing)
        raise ApiError(
            "agent_unavailable",
            status=503,
            session_id=outgoing.session["session_id"],
            conversation_id=outgoing.session["conversation_id"],
        )
    return message_response(outgoing.session, outgoing.message_id)


@dataclass
class _Outgoing:
    """A client message ready for the agent, and what to undo if the agent cannot take it."""

    session: Session
    frame: dict[str, Any]
    message_id: str
    seq: int | None = None
    previous_seq: int = 0
    idempotency_key: str = ""


async def _prepare(
    *, principal: Principal, session: Session, header_key: str | None, body: dict[str, Any]
) -> _Outgoing:
    """Checks 6-11 of §4.4 (existence and membership are checked) and the atomic seq commit."""
    config = settings.GATEWAY
    session_id = session["session_id"]
    ids = {"session_id": session["session_id"], "handshake_id": session["handshake_id"]}
    if session["status"] != ACKNOWLEDGED:
        raise Conflict(
            "handshake_not_ready",
            fields={"status": session["status"], **ids, "conversation_id": session["conversation_id"]},
        )
    conversation = alias(body, "conversation_id", "conversationId")
    if conversation and conversation != session["conversation_id"]:
        raise Conflict("conversation_mismatch", **ids, conversation_id=session["conversation_id"])
    where = {"session_id": session["session_id"], "conversation_id": session["conversation_id"]}
    broken = envelope.violation(body)
    if broken is not None and config.require_encrypted_frames:
        raise BadRequest("encryption_required", violation=broken, **where)
    seq = envelope.parse_seq(body.get("seq")) if broken is None else None
    if seq is not None and seq <= session["seq_client_to_agent"]:
        raise Conflict("replay_detected", violation="replay_detected", **where)
    message_id = alias(body, "message_id", "messageId") or f"msg_{secrets.token_hex(16)}"
    # decisions.md R1: the header when present, else the body's message_id, else no de-duplication beyond seq.
    key_source = header_key if header_key is not None else alias(body, "message_id", "messageId")
    idempotency_key = f"{session_id}:{principal.uid}:{key_source}" if key_source else ""
    if idempotency_key and not await sessions.reserve_idempotency_key(idempotency_key, config.idempotency_ttl_seconds):
        raise Conflict("duplicate_request", session_id=session["session_id"])
    previous = 0
    if seq is not None:

        def advance(record: Session) -> int | None:
            if seq <= record["seq_client_to_agent"]:
                return None
            before = int(record["seq_client_to_agent"])
            record["seq_client_to_agent"] = seq
            record["updated_at"] = unix_now()
            return before

        stored, result = await sessions.update(session_id, advance)
        if stored is None or result is None:
            if idempotency_key:
                await sessions.release_idempotency_key(idempotency_key, config.idempotency_ttl_seconds)
            if stored is None:
                raise NotFound("session not found")
            raise Conflict("replay_detected", violation="replay_detected", **where)
        previous = result
        session = stored
    frame = session_frames.session_message(body, principal=principal, session=session, message_id=message_id)
    return _Outgoing(session, frame, message_id, seq, previous, idempotency_key)


async def _undo(outgoing: _Outgoing) -> None:
    """The agent could not take the message: roll seq back and release the idempotency key (§4.4 row 12)."""
    if outgoing.seq is not None:
        seq = outgoing.seq

        def rollback(record: Session) -> None:
            if record["seq_client_to_agent"] == seq:
                record["seq_client_to_agent"] = outgoing.previous_seq

        await sessions.update(outgoing.session["session_id"], rollback)
    if outgoing.idempotency_key:
        await sessions.release_idempotency_key(outgoing.idempotency_key, settings.GATEWAY.idempotency_ttl_seconds)

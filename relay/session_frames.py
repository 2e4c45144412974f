"""The session frames and events the relay writes (docs/protocol/relay.md §4.5, §5.4, §5.6): built from a session
record, never from caller input alone."""

from __future__ import annotations

import time
from typing import Any

from gateway_site.auth import Principal
from gateway_site.timefmt import rfc3339
from relay.session_store import Session
from relay.sessions import ACKNOWLEDGED


def handshake_request(session: Session) -> dict[str, Any]:
    """`session.handshake.request`, to the agent (§5.4)."""
    return {
        "type": "session.handshake.request",
        "session_id": session["session_id"],
        "handshake_id": session["handshake_id"],
        "conversation_id": session["conversation_id"],
        "device_id": session["device_id"],
        "client_ephemeral_public_key": session["client_ephemeral_public_key"],
        "client_session_nonce": session["client_session_nonce"],
    }


def handshake_ack_event(session: Session) -> dict[str, Any]:
    """The `session.handshake.ack` event an HTTP ack puts in the session's stream (§4.3)."""
    return {
        "type": "session.handshake.ack",
        "status": ACKNOWLEDGED,
        "session_id": session["session_id"],
        "handshake_id": session["handshake_id"],
        "conversation_id": session["conversation_id"],
        "device_id": session["device_id"],
        "agent_ephemeral_public_key": session["agent_ephemeral_public_key"],
        "agent_identity_signature": session["agent_identity_signature"],
        "transcript_hash": session["transcript_hash"],
        "updated_at": rfc3339(session["updated_at"]),
    }


def unauthorized_session_frame(session_id: str, handshake_id: str) -> dict[str, Any]:
    """The agent's frame names a session it may not write to (§5.6 step 5)."""
    return {
        "type": "agent.error",
        "error": "unauthorized_session_frame",
        "session_id": session_id,
        "handshake_id": handshake_id,
    }


def requester(principal: Principal) -> dict[str, Any]:
    return {"uid": principal.uid, "email": principal.email or None, "display_name": principal.name or None}


def session_message(body: dict[str, Any], *, principal: Principal, session: Session, message_id: str) -> dict[str, Any]:
    """`session.message`, to the agent (§4.4): the client's envelope with the gateway's fields on top."""
    frame = dict(body)
    who = requester(principal)
    frame.update(
        {
            "type": "session.message",
            "message_id": message_id,
            "requester_uid": who["uid"],
            "requester_email": who["email"],
            "requester_display_name": who["display_name"],
            "requester": who,
            "received_at": rfc3339(time.time()),
            "session_id": session["session_id"],
            "handshake_id": session["handshake_id"],
        }
    )
    if session["conversation_id"]:
        frame["conversation_id"] = session["conversation_id"]
    return frame

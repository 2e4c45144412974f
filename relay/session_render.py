"""Response bodies of the session endpoints (docs/protocol/relay.md §4.1-4.4), rendered from a session record."""

from __future__ import annotations

from typing import Any

from gateway_site.timefmt import rfc3339
from relay.session_store import Session


def ids_echo(session: Session) -> dict[str, str]:
    """Every id in both spellings, as all session responses carry them."""
    return {
        "session_id": session["session_id"],
        "sessionId": session["session_id"],
        "handshake_id": session["handshake_id"],
        "handshakeId": session["handshake_id"],
        "conversation_id": session["conversation_id"],
        "conversationId": session["conversation_id"],
    }


def client_init_response(session: Session, relay_status: str, relay_error: str = "") -> dict[str, Any]:
    """§4.1, `202`."""
    body: dict[str, Any] = {"status": session["status"]}
    body.update(ids_echo(session))
    body["relay_status"] = relay_status
    body.update(
        {
            "device_id": session["device_id"],
            "deviceId": session["device_id"],
            "client_ephemeral_public_key": session["client_ephemeral_public_key"],
            "client_session_nonce": session["client_session_nonce"],
        }
    )
    if relay_error:
        body["relay_error"] = relay_error
    if session["last_error"]:
        body["last_error"] = session["last_error"]
    return body


def handshake_view(session: Session) -> dict[str, Any]:
    """§4.2, `200`."""
    body: dict[str, Any] = dict(ids_echo(session))
    body.update(
        {
            "device_id": session["device_id"],
            "deviceId": session["device_id"],
            "status": session["status"],
            "last_error": session["last_error"],
            "client_ephemeral_public_key": session["client_ephemeral_public_key"],
            "agent_ephemeral_public_key": session["agent_ephemeral_public_key"],
            "agent_identity_signature": session["agent_identity_signature"],
            "transcript_hash": session["transcript_hash"],
            "created_at": rfc3339(session["created_at"]),
            "updated_at": rfc3339(session["updated_at"]),
        }
    )
    return body


def ack_response(session: Session) -> dict[str, Any]:
    """§4.3, `202`."""
    return {"status": session["status"], **ids_echo(session)}


def message_response(session: Session, message_id: str) -> dict[str, Any]:
    """§4.4, `202`."""
    return {"status": "forwarded_to_agent", **ids_echo(session), "message_id": message_id, "messageId": message_id}

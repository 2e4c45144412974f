"""Relay sessions (docs/protocol/relay.md §2, §4, §5.6 with docs/protocol/decisions.md R1-R6): handshake, messages,
agent frames, sweeping.

Sessions live in the ephemeral store (relay.session_store). The per-frame paths (`message_prepare`,
`agent_frame`) read only that store and the membership cache, never the database.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from gateway_site.auth import Principal
from gateway_site.errors import ApiError, BadRequest, Conflict, Forbidden, NotFound, TooManyRequests
from gateway_site.ids import is_valid_id, validate_id
from relay import crypto, envelope
from relay.models import Device
from relay.session_store import Session, SessionLimit, sessions
from relay.stores import presence
from relay.transport import rfc3339
from shares import permissions

logger = logging.getLogger("gateway.relay")

PENDING_ACK = "pending_agent_ack"
PENDING_CONNECTION = "pending_agent_connection"
ACKNOWLEDGED = "agent_acknowledged"
AGENT_ERROR = "agent_error"
RESEND_AFTER_SECONDS = 5
IDLE_EXPIRY_SECONDS = 24 * 3600
SWEEP_PERIOD_SECONDS = 300
R3_FIELDS = frozenset({"type", "session_id", "message_id", "error", "code", "reason"})
R3_MAX_BYTES = 1024


def _now() -> int:
    return int(time.time())


def dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _alias(body: dict[str, Any], snake: str, camel: str) -> str:
    """`snake_case | camelCase`: only JSON strings count, trimmed, empty means absent; snake wins."""
    for key in (snake, camel):
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def ids_echo(session: Session) -> dict[str, str]:
    return {
        "session_id": session["session_id"],
        "sessionId": session["session_id"],
        "handshake_id": session["handshake_id"],
        "handshakeId": session["handshake_id"],
        "conversation_id": session["conversation_id"],
        "conversationId": session["conversation_id"],
    }


# -- membership --------------------------------------------------------------------------------------------------


def owner_member(session: Session, principal: Principal) -> bool:
    """Membership that needs no database: the session's owner by uid, or, in demo mode, by canonical email (the
    fallback that lets client-init in must also let the session be read, docs/protocol/relay.md §2 [Q])."""
    if session["owner_uid"] == principal.uid:
        return True
    if settings.GATEWAY.auth_mode == "demo" and session.get("owner_email"):
        from gateway_site.ids import canonical_email

        return canonical_email(principal.email) == session["owner_email"]
    return False


def is_member(session: Session, principal: Principal) -> bool:
    """decisions.md H5: the device's owner, or the user who created the session while they still hold an active
    grant on the device (cached, no DB per frame). Other collaborators of the device are not members."""
    if owner_member(session, principal):
        return True
    return session.get("created_by") == principal.uid and permissions.collaborator_access_cached(
        session["device_id"], principal.uid
    )


async def ensure_member(session: Session, principal: Principal) -> None:
    """403 `forbidden` unless `principal` is a member (decisions.md H5); only a creator's grant check, at most once a
    minute, reads the database (in a thread)."""
    if owner_member(session, principal):
        return
    if session.get("created_by") == principal.uid and await sync_to_async(permissions.collaborator_access_cached)(
        session["device_id"], principal.uid
    ):
        return
    raise Forbidden("forbidden")


# -- client-init (§4.1) ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientInit:
    device_id: str
    handshake_id: str
    client_key: str
    nonce: str
    conversation_id: str


def client_init_parse(body: dict[str, Any]) -> ClientInit:
    """Validation steps 3-7, in order."""
    device_id = validate_id(_alias(body, "device_id", "deviceId"), "device_id")
    nonce = _alias(body, "client_session_nonce", "clientSessionNonce")
    if not nonce:
        raise BadRequest("device_id, handshake_id, and client_session_nonce are required")
    handshake_id = validate_id(_alias(body, "handshake_id", "handshakeId"), "handshake_id")
    conversation_id = _alias(body, "conversation_id", "conversationId")
    if conversation_id and not is_valid_id(conversation_id):
        raise BadRequest("invalid conversation_id")
    client_key = _alias(body, "client_ephemeral_public_key", "clientEphemeralPublicKey")
    if not crypto.is_key32(client_key):
        raise BadRequest("invalid ephemeral public key")
    return ClientInit(device_id, handshake_id, client_key, nonce, conversation_id)


def client_init_session(*, principal: Principal, session_id: str, init: ClientInit) -> Session:
    """Steps 8-11 and the create-or-repeat (database: the device and the caller's access)."""
    device = Device.objects.filter(device_id=init.device_id).first()
    if device is None:
        raise NotFound("device not found")
    if not (
        permissions.is_owner(device, principal, email_fallback=True) or permissions.can_use_device(device, principal)
    ):
        raise Forbidden("forbidden")
    conversation_id = init.conversation_id or f"conv_{session_id}"
    now = _now()
    record: Session = {
        "session_id": session_id,
        "handshake_id": init.handshake_id,
        "device_id": init.device_id,
        "owner_uid": device.owner_uid,
        "owner_email": device.owner_email,
        "conversation_id": conversation_id,
        "client_ephemeral_public_key": init.client_key,
        "client_session_nonce": init.nonce,
        "agent_ephemeral_public_key": "",
        "agent_identity_signature": "",
        "transcript_hash": "",
        "status": PENDING_ACK,
        "last_error": "",
        "seq_client_to_agent": 0,
        "seq_agent_to_client": 0,
        "sent_to_connection": "",
        "created_by": principal.uid,
        "created_at": now,
        "updated_at": now,
    }
    limit = settings.GATEWAY.max_sessions_per_device
    try:
        stored, created = sessions.create(record, per_device_limit=limit)
    except SessionLimit:
        raise TooManyRequests("too many sessions for this device", max_sessions=limit) from None
    if created:
        return stored

    def repeat(existing: Session) -> None:
        if not owner_member(existing, principal) and existing.get("created_by") != principal.uid:
            raise Forbidden("forbidden")  # decisions.md H5: another collaborator's session
        same = (
            existing["device_id"] == init.device_id
            and existing["handshake_id"] == init.handshake_id
            and existing["client_ephemeral_public_key"] == init.client_key
            and existing["client_session_nonce"] == init.nonce
        )
        if not same:
            raise Conflict("handshake_id already exists with different payload")
        if existing["conversation_id"] != conversation_id:
            raise Conflict("handshake_id already exists with different conversation_id")
        existing["updated_at"] = _now()

    updated, _ = sessions.update(session_id, repeat)
    if updated is None:  # swept between create and update: start over as new
        updated, _ = sessions.create(record)
    return updated


def handshake_request_frame(session: Session) -> dict[str, Any]:
    return {
        "type": "session.handshake.request",
        "session_id": session["session_id"],
        "handshake_id": session["handshake_id"],
        "conversation_id": session["conversation_id"],
        "device_id": session["device_id"],
        "client_ephemeral_public_key": session["client_ephemeral_public_key"],
        "client_session_nonce": session["client_session_nonce"],
    }


def claim_request_send(session_id: str, connection_id: str) -> bool:
    """Atomically reserve the right to send the handshake request to socket `connection_id`: False when that
    socket already had it (docs/protocol/decisions.md R5: never twice to the same socket, even when a connect-time flush
    and a client-init race)."""

    def claim(session: Session) -> bool:
        if session["sent_to_connection"] == connection_id:
            return False
        session["sent_to_connection"] = connection_id
        return True

    return bool(sessions.update(session_id, claim)[1])


def record_request_sent(session_id: str, connection_id: str) -> Session | None:
    """The agent socket `connection_id` received the handshake request."""

    def mark(session: Session) -> None:
        # From agent_error too (upstream keeps agent_error with the error cleared, docs/protocol/relay.md §2 [Q]): a
        # request that reached the agent is pending its ack.
        if session["status"] in (PENDING_CONNECTION, AGENT_ERROR):
            session["status"] = PENDING_ACK
        session["last_error"] = ""
        session["sent_to_connection"] = connection_id
        session["updated_at"] = _now()

    return sessions.update(session_id, mark)[0]


def record_request_failed(session_id: str, reason: str) -> Session | None:
    def mark(session: Session) -> None:
        if session["status"] != ACKNOWLEDGED:
            session["status"] = PENDING_CONNECTION
        session["last_error"] = reason
        session["sent_to_connection"] = ""
        session["updated_at"] = _now()

    return sessions.update(session_id, mark)[0]


def client_init_response(session: Session, relay_status: str, relay_error: str = "") -> dict[str, Any]:
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


def resend_due(session: Session, connection_id: str | None) -> bool:
    """GET handshake re-sends a pending request after 5 s, but only to a socket that has not had it (R5)."""
    if session["status"] not in (PENDING_ACK, PENDING_CONNECTION):
        return False
    if _now() - session["updated_at"] < RESEND_AFTER_SECONDS:
        return False
    return connection_id is None or connection_id != session["sent_to_connection"]


def handshake_view(session: Session) -> dict[str, Any]:
    body = ids_echo(session)
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


# -- agent acks (§4.3, §5.6, R5) -----------------------------------------------------------------------------------


class AckRejected(Exception):
    """An ack that fails verification: `message` for logs/WS frames, `status` and `error` for HTTP."""

    def __init__(self, message: str, status: int, error: str) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error = error


def verify_ack(session: Session, identity_key: str, agent_key: str, signature: str, transcript_hash: str) -> str:
    """Recompute the transcript from the stored client fields and check the signature; returns the hash text."""
    if not (session["client_ephemeral_public_key"] and session["client_session_nonce"]):
        raise AckRejected("client handshake fields missing on gateway state", 400, "transcript hash mismatch")
    digest = crypto.transcript(
        session["session_id"],
        session["handshake_id"],
        session["client_ephemeral_public_key"],
        session["client_session_nonce"],
        agent_key,
    )
    if not crypto.transcript_matches(digest, transcript_hash):
        raise AckRejected("transcript hash mismatch", 400, "transcript hash mismatch")
    try:
        crypto.verify_signature(identity_key, digest, signature)
    except crypto.SignatureError as exc:
        raise AckRejected(f"signature verification failed: {exc}", 401, "signature verification failed") from None
    return transcript_hash


def ack_event(session: Session) -> dict[str, Any]:
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


def accept_ack(session_id: str, agent_key: str, signature: str, transcript_hash: str) -> Session:
    """Store a verified ack. The first valid ack wins: a later one with another agent key is a 409 (R5)."""

    def store(session: Session) -> None:
        if session["status"] == ACKNOWLEDGED and session["agent_ephemeral_public_key"] != agent_key:
            raise Conflict("handshake already acknowledged")
        session["agent_ephemeral_public_key"] = agent_key
        session["agent_identity_signature"] = signature
        session["transcript_hash"] = transcript_hash
        session["status"] = ACKNOWLEDGED
        session["last_error"] = ""
        if not session["conversation_id"]:
            session["conversation_id"] = f"conv_{session['session_id']}"
        session["updated_at"] = _now()

    updated, _ = sessions.update(session_id, store)
    if updated is None:
        raise NotFound("handshake not found")
    return updated


@dataclass(frozen=True)
class HttpAck:
    device_id: str
    handshake_id: str
    agent_key: str
    signature: str
    transcript_hash: str


def agent_ack_parse(body: dict[str, Any]) -> HttpAck:
    """Steps 3-5 of §4.3."""
    device_id = validate_id(_alias(body, "device_id", "deviceId"), "device_id")
    handshake_id = validate_id(_alias(body, "handshake_id", "handshakeId"), "handshake_id")
    agent_key = _alias(body, "agent_ephemeral_public_key", "agentEphemeralPublicKey")
    if not crypto.is_key32(agent_key):
        raise BadRequest("invalid ephemeral public key")
    return HttpAck(
        device_id,
        handshake_id,
        agent_key,
        _alias(body, "agent_identity_signature", "agentIdentitySignature"),
        _alias(body, "transcript_hash", "transcriptHash"),
    )


def agent_ack_http(*, principal: Principal, session_id: str, ack: HttpAck) -> Session:
    """Steps 6-12 of §4.3 and the store; a failed HTTP ack changes nothing (database: the identity key)."""
    session = sessions.get(session_id)
    if session is None:
        raise NotFound("handshake not found")
    device = Device.objects.filter(device_id=session["device_id"]).first()
    if device is None or not device.public_key or device.owner_uid != principal.uid:
        raise NotFound("device identity not found")
    if ack.handshake_id != session["handshake_id"]:
        raise NotFound("handshake not found")
    if ack.device_id != session["device_id"]:
        raise BadRequest("device_id mismatch for handshake")
    try:
        verify_ack(session, device.public_key, ack.agent_key, ack.signature, ack.transcript_hash)
    except AckRejected as exc:
        logger.info("agent ack rejected", extra={"fields": {"session_id": session_id, "reason": exc.message}})
        raise ApiError(exc.error, status=exc.status) from None
    return accept_ack(session_id, ack.agent_key, ack.signature, ack.transcript_hash)


def device_identity_key(device_id: str) -> str:
    device = Device.objects.filter(device_id=device_id).only("public_key").first()
    return device.public_key if device is not None else ""


# -- messages (§4.4, R1) ------------------------------------------------------------------------------------------


@dataclass
class Outgoing:
    """A client message ready for the agent, and what to undo if the agent cannot take it."""

    session: Session
    frame: dict[str, Any]
    seq: int | None = None
    previous_seq: int = 0
    idempotency_key: str = ""
    message_id: str = ""
    response: dict[str, Any] = field(default_factory=dict)


def _requester(principal: Principal) -> dict[str, Any]:
    return {"uid": principal.uid, "email": principal.email or None, "display_name": principal.name or None}


def message_prepare(
    *, principal: Principal, session: Session, header_key: str | None, body: dict[str, Any]
) -> Outgoing:
    """Checks 6-11 of §4.4 (the caller checked existence and membership) and the atomic seq commit; the caller
    then writes `frame` to the agent socket. Touches only the ephemeral store: no database, no thread hop.
    """
    config = settings.GATEWAY
    session_id = session["session_id"]
    ids = {"session_id": session["session_id"], "handshake_id": session["handshake_id"]}
    if session["status"] != ACKNOWLEDGED:
        raise Conflict(
            "handshake_not_ready",
            fields={"status": session["status"], **ids, "conversation_id": session["conversation_id"]},
        )
    conversation = _alias(body, "conversation_id", "conversationId")
    if conversation and conversation != session["conversation_id"]:
        raise Conflict("conversation_mismatch", **ids, conversation_id=session["conversation_id"])
    where = {"session_id": session["session_id"], "conversation_id": session["conversation_id"]}
    broken = envelope.violation(body)
    if broken is not None and config.require_encrypted_frames:
        raise BadRequest("encryption_required", violation=broken, **where)
    seq = envelope.parse_seq(body.get("seq")) if broken is None else None
    if seq is not None and seq <= session["seq_client_to_agent"]:
        raise Conflict("replay_detected", violation="replay_detected", **where)
    message_id = _alias(body, "message_id", "messageId") or f"msg_{secrets.token_hex(16)}"
    # docs/protocol/decisions.md R1: the header when present, else the body's message_id, else no de-duplication beyond
    # seq.
    key_source = header_key if header_key is not None else _alias(body, "message_id", "messageId")
    idempotency_key = f"{session_id}:{principal.uid}:{key_source}" if key_source else ""
    if idempotency_key and not sessions.reserve_idempotency_key(idempotency_key, config.idempotency_ttl_seconds):
        raise Conflict("duplicate_request", session_id=session["session_id"])
    previous = 0
    if seq is not None:

        def advance(record: Session) -> int | None:
            if seq <= record["seq_client_to_agent"]:
                return None
            before = int(record["seq_client_to_agent"])
            record["seq_client_to_agent"] = seq
            record["updated_at"] = _now()
            return before

        stored, result = sessions.update(session_id, advance)
        if stored is None or result is None:
            if idempotency_key:
                sessions.release_idempotency_key(idempotency_key, config.idempotency_ttl_seconds)
            if stored is None:
                raise NotFound("session not found")
            raise Conflict("replay_detected", violation="replay_detected", **where)
        previous = result
        session = stored
    frame = dict(body)
    requester = _requester(principal)
    frame.update(
        {
            "type": "session.message",
            "message_id": message_id,
            "requester_uid": requester["uid"],
            "requester_email": requester["email"],
            "requester_display_name": requester["display_name"],
            "requester": requester,
            "received_at": rfc3339(time.time()),
            "session_id": session["session_id"],
            "handshake_id": session["handshake_id"],
        }
    )
    if session["conversation_id"]:
        frame["conversation_id"] = session["conversation_id"]
    response = {"status": "forwarded_to_agent", **ids_echo(session), "message_id": message_id, "messageId": message_id}
    return Outgoing(session, frame, seq, previous, idempotency_key, message_id, response)


def message_undo(outgoing: Outgoing) -> None:
    """The agent could not take the message: roll seq back and release the idempotency key (§4.4 row 12)."""
    if outgoing.seq is not None:
        seq = outgoing.seq

        def rollback(record: Session) -> None:
            if record["seq_client_to_agent"] == seq:
                record["seq_client_to_agent"] = outgoing.previous_seq

        sessions.update(outgoing.session["session_id"], rollback)
    if outgoing.idempotency_key:
        sessions.release_idempotency_key(outgoing.idempotency_key, settings.GATEWAY.idempotency_ttl_seconds)


def agent_unavailable(session: Session) -> ApiError:
    return ApiError(
        "agent_unavailable",
        status=503,
        session_id=session["session_id"],
        conversation_id=session["conversation_id"],
    )


# -- agent frames (§5.6, R3) --------------------------------------------------------------------------------------


@dataclass
class FrameOutcome:
    """What the agent socket must do with one frame: replies to send and an event to store and publish."""

    replies: list[dict[str, Any]] = field(default_factory=list)
    event: tuple[str, str, str] | None = None  # (session_id, SSE event name, JSON data)


def _unauthorized(session_id: str, handshake_id: str) -> dict[str, Any]:
    return {
        "type": "agent.error",
        "error": "unauthorized_session_frame",
        "session_id": session_id,
        "handshake_id": handshake_id,
    }


def _r3_plaintext_error(frame: dict[str, Any]) -> str | None:
    """docs/protocol/decisions.md R3: the reason of a relayable plaintext `session.error`, else None."""
    if set(frame) - R3_FIELDS:
        return None
    if any(not isinstance(value, str) for value in frame.values()):
        return None
    if len(dumps(frame).encode("utf-8")) > R3_MAX_BYTES:
        return None
    return frame.get("reason") or frame.get("error") or frame.get("code") or "agent_error"


def agent_frame(device_id: str, frame: dict[str, Any], kind: str, identity_key: str | None = None) -> FrameOutcome:
    """Steps 3-8 of §5.6 for a frame that passed the transport check (transport fields already removed).

    For `session.handshake.ack` the caller passes the device's identity key (read from the database).
    """
    session_id = _alias(frame, "session_id", "sessionId")
    handshake_id = _alias(frame, "handshake_id", "handshakeId")
    if not session_id:
        return FrameOutcome()
    session = sessions.get(session_id)
    if kind == "session.handshake.ack":
        return _agent_ack_frame(device_id, frame, session, handshake_id, identity_key or "")
    if (
        session is None
        or session["device_id"] != device_id
        or (handshake_id and handshake_id != session["handshake_id"])
        or session["status"] != ACKNOWLEDGED
    ):
        return FrameOutcome(replies=[_unauthorized(session_id, handshake_id)])
    if kind in ("session.progress", "session.result", "session.error", "session.message"):
        return _encrypted_frame(session, frame, kind)
    out = dict(frame)
    if not out.get("conversation_id"):
        out["conversation_id"] = session["conversation_id"]
    return FrameOutcome(event=(session_id, "session.event", dumps(out)))


def _encrypted_frame(session: Session, frame: dict[str, Any], kind: str) -> FrameOutcome:
    session_id = session["session_id"]
    out = dict(frame)
    out["conversation_id"] = session["conversation_id"]
    broken = envelope.violation(out)
    if broken is not None:
        sessions.update(session_id, lambda record: record.__setitem__("updated_at", _now()))
        if kind == "session.error" and settings.GATEWAY.require_encrypted_frames:
            reason = _r3_plaintext_error(frame)
            if reason is not None:
                data = {"type": "session.error", "session_id": session_id, "reason": reason}
                return FrameOutcome(event=(session_id, "session.error", dumps(data)))
        if settings.GATEWAY.require_encrypted_frames:
            logger.info(
                "unencrypted agent frame dropped", extra={"fields": {"session_id": session_id, "violation": broken}}
            )
            return FrameOutcome()
        return FrameOutcome(event=(session_id, "session.event", dumps(out)))
    seq = envelope.parse_seq(out["seq"])

    def advance(record: Session) -> bool:
        if seq is None or seq <= record["seq_agent_to_client"]:
            return False
        record["seq_agent_to_client"] = seq
        record["updated_at"] = _now()
        return True

    _, accepted = sessions.update(session_id, advance)
    if not accepted:
        logger.info("agent frame replay dropped", extra={"fields": {"session_id": session_id}})
        return FrameOutcome()
    return FrameOutcome(event=(session_id, "session.event", dumps(out)))


def _agent_ack_frame(
    device_id: str, frame: dict[str, Any], session: Session | None, handshake_id: str, identity_key: str
) -> FrameOutcome:
    if (
        session is None
        or session["device_id"] != device_id
        or (handshake_id and handshake_id != session["handshake_id"])
    ):
        return FrameOutcome()
    session_id = session["session_id"]
    out = dict(frame)
    out.update(
        {
            "handshake_id": session["handshake_id"],
            "conversation_id": session["conversation_id"],
            "session_id": session_id,
            "device_id": session["device_id"],
        }
    )
    agent_key = _alias(frame, "agent_ephemeral_public_key", "agentEphemeralPublicKey")
    signature = _alias(frame, "agent_identity_signature", "agentIdentitySignature")
    transcript_hash = _alias(frame, "transcript_hash", "transcriptHash")
    already = session["status"] == ACKNOWLEDGED
    if already and (agent_key != session["agent_ephemeral_public_key"] or frame.get("status") == "error"):
        # R5, and an acknowledged session is never demoted by a later ack.
        return FrameOutcome(
            replies=[
                {
                    "type": "agent.error",
                    "error": "handshake already acknowledged",
                    "session_id": session_id,
                    "handshake_id": session["handshake_id"],
                }
            ]
        )
    if frame.get("status") == "error":
        message = next(
            (
                v.strip()
                for v in (frame.get("error"), frame.get("details"), frame.get("message"))
                if isinstance(v, str) and v.strip()
            ),
            "agent handshake error",
        )
        return _ack_failed(session_id, out, message)
    try:
        if not (agent_key and signature and transcript_hash):
            raise AckRejected("missing handshake ack fields from agent websocket frame", 400, "")
        if not identity_key:
            raise AckRejected("device identity not found", 404, "")
        raw = crypto.b64decode_strict(agent_key)
        if raw is None:
            raise AckRejected("invalid x25519 public key encoding: not standard padded base64", 400, "")
        if len(raw) != 32:
            raise AckRejected(f"invalid x25519 public key length: got {len(raw)} want 32", 400, "")
        verify_ack(session, identity_key, agent_key, signature, transcript_hash)
    except AckRejected as exc:
        if already:  # a failing copy of the accepted ack: refuse it, change nothing
            return FrameOutcome(replies=[{"type": "agent.error", "error": exc.message, "session_id": session_id}])
        return _ack_failed(session_id, out, exc.message)
    try:
        stored = accept_ack(session_id, agent_key, signature, transcript_hash)
    except ApiError as exc:
        return FrameOutcome(replies=[{"type": "agent.error", "error": exc.message, "session_id": session_id}])
    out["status"] = ACKNOWLEDGED
    out["updated_at"] = rfc3339(stored["updated_at"])
    return FrameOutcome(event=(session_id, "session.event", dumps(out)))


def _ack_failed(session_id: str, out: dict[str, Any], message: str) -> FrameOutcome:
    def fail(record: Session) -> None:
        record["status"] = AGENT_ERROR
        record["last_error"] = message
        record["sent_to_connection"] = ""  # a new client-init may hand the request to the agent again
        record["updated_at"] = _now()

    sessions.update(session_id, fail)
    out["status"] = AGENT_ERROR
    out["error"] = message
    logger.info("agent ack failed", extra={"fields": {"session_id": session_id, "reason": message}})
    return FrameOutcome(event=(session_id, "session.event", dumps(out)))


def store_event(event: tuple[str, str, str]) -> int:
    session_id, name, data = event
    return sessions.append_event(session_id, name, data, max_bytes=settings.GATEWAY.session_backlog_bytes)


def pending_sessions(device_id: str) -> list[Session]:
    """Sessions of the device still waiting for the agent: flushed to a newly connected socket."""
    return [s for s in sessions.for_device(device_id) if s["status"] in (PENDING_ACK, PENDING_CONNECTION)]


# -- sweeping and counters ----------------------------------------------------------------------------------------


def sessions_sweep(*, now: int | None = None) -> list[Session]:
    """Delete sessions idle for 24 h, except live ones whose device is connected; returns the deleted ones."""
    current = _now() if now is None else now
    swept = []
    for session in sessions.all():
        if not expired(session, current):
            continue
        if sessions.delete(session["session_id"]) is not None:
            swept.append(session)
    return swept


def sweep_if_due() -> list[Session]:
    """Sweep at most once per 5 minutes across all callers (client-init and stream heartbeats trigger it)."""
    if not sessions.claim_sweep(SWEEP_PERIOD_SECONDS):
        return []
    return sessions_sweep()


def expired(session: Session, now: int | None = None) -> bool:
    """Idle for 24 h and not a live session of a connected device (docs/protocol/relay.md §2 lifetime)."""
    current = _now() if now is None else now
    if current - session["updated_at"] < IDLE_EXPIRY_SECONDS:
        return False
    record = presence.get(session["device_id"])
    connected = record is not None and record.online(current)
    return not (session["status"] in (ACKNOWLEDGED, PENDING_ACK, PENDING_CONNECTION) and connected)


def load(session_id: str) -> Session:
    """The session, or 404 `session not found` — also for one past its idle expiry that no sweep has reached yet
    (sweeps run at most every 5 minutes, when a request or a stream comes by; expiry must not wait for them)."""
    session = sessions.get(session_id)
    if session is not None and expired(session):
        sessions.delete(session_id)
        session = None
    if session is None:
        raise NotFound("session not found")
    return session


def sessions_of_device_delete(device_id: str) -> list[str]:
    """The device was deleted: its sessions go too; returns their ids."""
    ids = [s["session_id"] for s in sessions.for_device(device_id)]
    for session_id in ids:
        sessions.delete(session_id)
    return ids


def health_counts(principal: Principal) -> dict[str, int]:
    """`sessions` (owned by the caller as device owner) and node-wide `event_backlogs`."""
    owned = sum(1 for s in sessions.all() if s["owner_uid"] == principal.uid)
    return {"sessions": owned, "event_backlogs": sessions.backlog_count()}


def session_id_param(value: str) -> str:
    return validate_id(value, "session_id")


def handshake_id_param(value: str) -> str:
    return validate_id(value, "handshake_id")


def idempotency_header(value: str | None) -> str | None:
    """R1: absent is fine; present must be non-empty after trimming."""
    if value is None:
        return None
    if not value.strip():
        raise BadRequest("missing X-Idempotency-Key header")
    return value.strip()

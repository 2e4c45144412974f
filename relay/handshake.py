"""The handshake services (docs/protocol/relay.md §4.1-4.3, §5.6 with docs/protocol/decisions.md R5): opening a
session, handing its request to the agent, reading it back, and accepting the agent's signed ack."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings

from gateway_site import metrics
from gateway_site.auth import Principal
from gateway_site.errors import ApiError, BadRequest, Conflict, Forbidden, NotFound, TooManyRequests
from relay import access, crypto, delivery, session_frames
from relay.models import Device
from relay.session_events import session_event_publish, sessions_sweep_due
from relay.session_requests import AckProof, ClientInit, HttpAck
from relay.session_store import Session, SessionLimit
from relay.sessions import (
    ACKNOWLEDGED,
    AGENT_ERROR,
    PENDING_ACK,
    PENDING_CONNECTION,
    dumps,
    ensure_member,
    load,
    owner_member,
    sessions,
    unix_now,
)

logger = logging.getLogger("gateway.relay")

RESEND_AFTER_SECONDS = 5


# -- opening a session (§4.1) --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InitOutcome:
    session: Session
    relay_status: str  # forwarded_to_agent, pending_agent_connection or already_acknowledged
    relay_error: str = ""


async def session_client_init(*, principal: Principal, session_id: str, init: ClientInit) -> InitOutcome:
    """Create the session (or repeat an identical client-init), then hand its request to the agent."""
    owner_uid, owner_email = await sync_to_async(_device_for_init)(principal=principal, device_id=init.device_id)
    session = await _create_or_repeat(
        principal=principal, session_id=session_id, init=init, owner_uid=owner_uid, owner_email=owner_email
    )
    await sessions_sweep_due()
    if session["status"] == ACKNOWLEDGED:
        return InitOutcome(session, "already_acknowledged")
    session, failure = await session_request_send(session)
    if failure:
        return InitOutcome(session, "pending_agent_connection", failure)
    return InitOutcome(session, "forwarded_to_agent")


def _device_for_init(*, principal: Principal, device_id: str) -> tuple[str, str]:
    """Steps 8-11 (database: the device and the caller's access); returns the device's owner uid and email."""
    device = Device.objects.filter(device_id=device_id).first()
    if device is None:
        raise NotFound("device not found")
    if not (access.is_owner(device, principal, email_fallback=True) or access.can_use_device(device, principal)):
        raise Forbidden("forbidden")
    return device.owner_uid, device.owner_email


async def _create_or_repeat(
    *, principal: Principal, session_id: str, init: ClientInit, owner_uid: str, owner_email: str
) -> Session:
    """Create the session, or accept an identical repeat of its client-init."""
    conversation_id = init.conversation_id or f"conv_{session_id}"
    now = unix_now()
    record: Session = {
        "session_id": session_id,
        "handshake_id": init.handshake_id,
        "device_id": init.device_id,
        "owner_uid": owner_uid,
        "owner_email": owner_email,
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
        stored, created = await sessions.create(record, per_device_limit=limit)
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
        existing["updated_at"] = unix_now()

    updated, _ = await sessions.update(session_id, repeat)
    if updated is None:  # swept between create and update: start over as new
        updated, _ = await sessions.create(record)
    return updated


# -- handing the request to the agent (R5) ---------------------------------------------------------------------------


async def session_request_send(session: Session) -> tuple[Session, str]:
    """Write the handshake request to the device's socket; returns the updated session and the failure reason
    (`agent_not_connected`, `agent_unavailable`, `session_not_found`, or '' when it was sent or already had it)."""
    session_id = session["session_id"]
    address = await delivery.agent_connection(session["device_id"])
    if address is None:
        updated = await _record_request_failed(session_id, "agent_not_connected")
        return updated or session, "agent_not_connected"
    if not await _claim_request_send(session_id, address):
        return await load(session_id), ""  # this socket already has the request
    if not await delivery.send_to_connection(session["device_id"], address, session_frames.handshake_request(session)):
        updated = await _record_request_failed(session_id, "agent_unavailable")
        return updated or session, "agent_unavailable"
    updated = await _record_request_sent(session_id, address)
    if updated is None:
        return session, "session_not_found"
    return updated, ""


async def session_requests_flush(*, device_id: str, address: str) -> None:
    """A new agent socket: hand it every request still waiting (§5.2 step 6), each at most once; stop at the first
    write that fails."""
    for session in await sessions.for_device(device_id):
        if session["status"] not in (PENDING_ACK, PENDING_CONNECTION):
            continue
        session_id = session["session_id"]
        if not await _claim_request_send(session_id, address):
            continue
        if await delivery.send_to_connection(device_id, address, session_frames.handshake_request(session)):
            await _record_request_sent(session_id, address)
        else:
            await _record_request_failed(session_id, "agent_unavailable")
            return


async def _claim_request_send(session_id: str, address: str) -> bool:
    """Atomically reserve the right to send the handshake request to the socket at `address` (unique across
    processes, relay.delivery): False when that socket already had it (decisions.md R5: never twice to the same
    socket, even when a connect-time flush and a client-init race)."""

    def claim(session: Session) -> bool:
        if session["sent_to_connection"] == address:
            return False
        session["sent_to_connection"] = address
        return True

    return bool((await sessions.update(session_id, claim))[1])


async def _record_request_sent(session_id: str, address: str) -> Session | None:
    def mark(session: Session) -> None:
        # From agent_error too (upstream keeps agent_error with the error cleared, docs/protocol/relay.md §2 [Q]): a
        # request that reached the agent is pending its ack.
        if session["status"] in (PENDING_CONNECTION, AGENT_ERROR):
            session["status"] = PENDING_ACK
        session["last_error"] = ""
        session["sent_to_connection"] = address
        session["updated_at"] = unix_now()

    return (await sessions.update(session_id, mark))[0]


async def _record_request_failed(session_id: str, reason: str) -> Session | None:
    def mark(session: Session) -> None:
        if session["status"] != ACKNOWLEDGED:
            session["status"] = PENDING_CONNECTION
        session["last_error"] = reason
        session["sent_to_connection"] = ""
        session["updated_at"] = unix_now()

    return (await sessions.update(session_id, mark))[0]


def _resend_due(session: Session, address: str | None) -> bool:
    """GET handshake re-sends a pending request after 5 s, but only to a socket that has not had it (R5)."""
    if session["status"] not in (PENDING_ACK, PENDING_CONNECTION):
        return False
    if unix_now() - session["updated_at"] < RESEND_AFTER_SECONDS:
        return False
    return address is None or address != session["sent_to_connection"]


# -- reading it back (§4.2) ----------------------------------------------------------------------------------------


async def session_handshake_read(*, principal: Principal, session_id: str, handshake_id: str) -> Session:
    """The session of a member, with its request handed again to the agent when it is due (R5)."""
    session = await load(session_id)
    await ensure_member(session, principal)
    if handshake_id != session["handshake_id"]:
        raise NotFound("handshake not found")
    if _resend_due(session, await delivery.agent_connection(session["device_id"])):
        session, _ = await session_request_send(session)
    return session


# -- the agent's ack (§4.3, §5.6) ----------------------------------------------------------------------------------


class AckRejected(ApiError):
    """An ack that fails verification. The HTTP answer is `status` with `message` (the contract's short error); the
    agent socket and the logs get the detailed `reason`."""

    def __init__(self, reason: str, status: int, error: str = "") -> None:
        super().__init__(error, status=status)
        self.reason = reason


def verify_ack(session: Session, *, identity_key: str, proof: AckProof) -> None:
    """Recompute the transcript from the stored client fields and check the signature over it."""
    if not (session["client_ephemeral_public_key"] and session["client_session_nonce"]):
        raise AckRejected("client handshake fields missing on gateway state", 400, "transcript hash mismatch")
    digest = crypto.transcript(
        session["session_id"],
        session["handshake_id"],
        session["client_ephemeral_public_key"],
        session["client_session_nonce"],
        proof.agent_key,
    )
    if not crypto.transcript_matches(digest, proof.transcript_hash):
        raise AckRejected("transcript hash mismatch", 400, "transcript hash mismatch")
    try:
        crypto.verify_signature(identity_key, digest, proof.signature)
    except crypto.SignatureError as exc:
        raise AckRejected(f"signature verification failed: {exc}", 401, "signature verification failed") from None


async def accept_ack(session_id: str, proof: AckProof) -> Session:
    """Store a verified ack. The first valid ack wins: a later one with another agent key is a 409 (R5). Only the
    ack that acknowledges the session counts as a handshake (gateway_site.metrics), not a repeat of it."""

    def store(session: Session) -> bool:
        if session["status"] == ACKNOWLEDGED and session["agent_ephemeral_public_key"] != proof.agent_key:
            raise Conflict("handshake already acknowledged")
        first = bool(session["status"] != ACKNOWLEDGED)
        session["agent_ephemeral_public_key"] = proof.agent_key
        session["agent_identity_signature"] = proof.signature
        session["transcript_hash"] = proof.transcript_hash
        session["status"] = ACKNOWLEDGED
        session["last_error"] = ""
        if not session["conversation_id"]:
            session["conversation_id"] = f"conv_{session['session_id']}"
        session["updated_at"] = unix_now()
        return first

    updated, first = await sessions.update(session_id, store)
    if updated is None:
        raise NotFound("handshake not found")
    if first:
        metrics.handshake("ok")
    return updated


async def session_ack_post(*, principal: Principal, session_id: str, ack: HttpAck) -> Session:
    """`POST …/agent-ack`: verify and store the ack, then publish `session.handshake.ack` to the session's stream."""
    session = await sessions.get(session_id)
    if session is None:
        raise NotFound("handshake not found")
    identity_key = await sync_to_async(_owned_identity_key)(principal=principal, device_id=session["device_id"])
    session = await _ack_http(session=session, identity_key=identity_key, ack=ack)
    await session_event_publish(session_id, "session.event", dumps(session_frames.handshake_ack_event(session)))
    return session


def _owned_identity_key(*, principal: Principal, device_id: str) -> str:
    """Step 7 of §4.3 (database): the device's identity key, if the caller owns the device."""
    device = Device.objects.filter(device_id=device_id).first()
    if device is None or not device.public_key or device.owner_uid != principal.uid:
        raise NotFound("device identity not found")
    return device.public_key


async def _ack_http(*, session: Session, identity_key: str, ack: HttpAck) -> Session:
    """Steps 8-12 of §4.3 and the store; a failed HTTP ack changes nothing."""
    session_id = session["session_id"]
    if ack.handshake_id != session["handshake_id"]:
        raise NotFound("handshake not found")
    if ack.device_id != session["device_id"]:
        raise BadRequest("device_id mismatch for handshake")
    try:
        verify_ack(session, identity_key=identity_key, proof=ack.proof)
    except AckRejected as exc:
        logger.info("agent ack rejected", extra={"fields": {"session_id": session_id, "reason": exc.reason}})
        metrics.handshake("failed")
        raise
    return await accept_ack(session_id, ack.proof)


def device_identity_key(device_id: str) -> str:
    """The device's registered Ed25519 key ('' when none), for verifying acks sent on the agent socket."""
    device = Device.objects.filter(device_id=device_id).only("public_key").first()
    return device.public_key if device is not None else ""

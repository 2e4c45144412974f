"""Frames from the agent socket that concern a session (docs/protocol/relay.md §5.6 with docs/protocol/decisions.md
R3, R5): acks, encrypted replies and the rest, checked against the session and turned into stream events.

Per frame only the ephemeral store is used; an ack also reads the device's identity key (database, in a thread). An
encrypted frame of a session this process has seen acknowledged takes one atomic store step (`advance_and_append`:
check the session, advance its seq, append the event), which in Redis mode is one round trip.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from gateway_site import metrics
from gateway_site.errors import ApiError
from gateway_site.timefmt import rfc3339
from relay import crypto, delivery, envelope, session_frames
from relay.frames import alias
from relay.handshake import AckRejected, accept_ack, device_identity_key, verify_ack
from relay.session_events import session_event_publish
from relay.session_requests import ack_proof
from relay.session_store import APPENDED, REPLAYED, Advance, Advanced, Session
from relay.sessions import ACKNOWLEDGED, AGENT_ERROR, dumps, sessions, unix_now

logger = logging.getLogger("gateway.relay")

R3_FIELDS = frozenset({"type", "session_id", "message_id", "error", "code", "reason"})
R3_MAX_BYTES = 1024
ENCRYPTED_KINDS = frozenset({"session.progress", "session.result", "session.error", "session.message"})

# Conversation ids of acknowledged sessions seen here (a session never changes its own): with it, an encrypted frame
# needs no read of the record first. Only a hint: `advance_and_append` checks it against the record atomically.
_conversations: dict[str, str] = {}
CONVERSATIONS_MAX = 10_000


async def session_agent_frame(
    *, device_id: str, frame: dict[str, Any], kind: str, received: float = 0.0
) -> list[dict[str, Any]]:
    """Steps 3-8 of §5.6 for a frame that passed the transport check (transport fields already removed): publishes
    the event it yields, if any, and returns the frames to answer the agent with. `received`: when the socket got it
    (gateway_site.metrics)."""
    identity_key = None
    if kind == "session.handshake.ack":
        identity_key = await database_sync_to_async(device_identity_key)(device_id)
    outcome = await _outcome(device_id, frame, kind, identity_key)
    if outcome.event is not None:
        await session_event_publish(*outcome.event)
        metrics.agent_frame_relayed(len(outcome.event[2]), received)
    elif outcome.relayed:
        metrics.agent_frame_relayed(outcome.relayed, received)
    return outcome.replies


async def session_agent_frames(
    *, device_id: str, frames: list[tuple[dict[str, Any], str, float]]
) -> list[dict[str, Any]]:
    """`session_agent_frame` for several frames of one socket, in their order (relay.frame_lane): a run of encrypted
    frames of sessions seen acknowledged takes one store call for the run; returns the replies, in order. Each frame
    comes with the time the socket received it."""
    replies: list[dict[str, Any]] = []
    run: list[tuple[dict[str, Any], str, float, Advance]] = []
    for frame, kind, received in frames:
        prepared = _prepare(device_id, frame, kind)
        if prepared is not None:
            run.append((frame, kind, received, prepared))
            continue
        replies += await _relay_run(device_id, run)
        run = []
        replies += await session_agent_frame(device_id=device_id, frame=frame, kind=kind, received=received)
    replies += await _relay_run(device_id, run)
    return replies


async def _relay_run(device_id: str, run: list[tuple[dict[str, Any], str, float, Advance]]) -> list[dict[str, Any]]:
    if not run:
        return []
    replies: list[dict[str, Any]] = []
    stored: list[tuple[str, int, str, str, frozenset[str]]] = []
    started: list[float] = []
    results = await sessions.advance_and_append([prepared for _, _, _, prepared in run])
    for (frame, kind, received, prepared), result in zip(run, results, strict=True):
        if result.outcome == APPENDED:
            stored.append((prepared.session_id, result.event_id, prepared.name, prepared.data, result.followers))
            started.append(received)
        elif result.outcome == REPLAYED:
            _replayed(prepared)
        else:  # not as remembered: the full path answers (after the events stored before it)
            await _publish(stored, started)
            stored, started = [], []
            _conversations.pop(prepared.session_id, None)
            replies += await session_agent_frame(device_id=device_id, frame=frame, kind=kind, received=received)
    await _publish(stored, started)
    return replies


async def _publish(stored: list[tuple[str, int, str, str, frozenset[str]]], started: list[float]) -> None:
    await delivery.publish_session_events(stored)
    for (_, _, _, data, _), received in zip(stored, started, strict=True):
        metrics.agent_frame_relayed(len(data), received)


@dataclass
class FrameOutcome:
    """What one frame yields: replies to the agent and an event for the session's stream."""

    replies: list[dict[str, Any]] = field(default_factory=list)
    event: tuple[str, str, str] | None = None  # (session_id, SSE event name, JSON data)
    relayed: int = 0  # the size of an event the store step already stored and handed to the streams


def _r3_plaintext_error(frame: dict[str, Any]) -> str | None:
    """docs/protocol/decisions.md R3: the reason of a relayable plaintext `session.error`, else None."""
    if set(frame) - R3_FIELDS:
        return None
    if any(not isinstance(value, str) for value in frame.values()):
        return None
    if len(dumps(frame).encode("utf-8")) > R3_MAX_BYTES:
        return None
    return frame.get("reason") or frame.get("error") or frame.get("code") or "agent_error"


async def _outcome(device_id: str, frame: dict[str, Any], kind: str, identity_key: str | None = None) -> FrameOutcome:
    """Steps 3-8 of §5.6 for a frame that passed the transport check (transport fields already removed).

    For `session.handshake.ack` the caller passes the device's identity key (read from the database).
    """
    session_id = alias(frame, "session_id", "sessionId")
    handshake_id = alias(frame, "handshake_id", "handshakeId")
    if not session_id:
        return FrameOutcome()
    prepared = _prepare(device_id, frame, kind)
    if prepared is not None:
        [result] = await sessions.advance_and_append([prepared])
        if result.outcome == APPENDED or result.outcome == REPLAYED:
            return FrameOutcome(relayed=await _relayed(prepared, result))
        _conversations.pop(session_id, None)  # not as remembered: the full path below answers
    session = await sessions.get(session_id)
    if kind == "session.handshake.ack":
        return await _agent_ack_frame(device_id, frame, session, handshake_id, identity_key or "")
    if (
        session is None
        or session["device_id"] != device_id
        or (handshake_id and handshake_id != session["handshake_id"])
        or session["status"] != ACKNOWLEDGED
    ):
        return FrameOutcome(replies=[session_frames.unauthorized_session_frame(session_id, handshake_id)])
    if kind in ENCRYPTED_KINDS:
        return await _encrypted_frame(session, frame, kind, handshake_id)
    out = dict(frame)
    if not out.get("conversation_id"):
        out["conversation_id"] = session["conversation_id"]
    return FrameOutcome(event=(session_id, "session.event", dumps(out)))


async def _encrypted_frame(session: Session, frame: dict[str, Any], kind: str, handshake_id: str) -> FrameOutcome:
    session_id = session["session_id"]
    out = dict(frame)
    out["conversation_id"] = session["conversation_id"]
    broken = envelope.violation(out)
    if broken is not None:
        await sessions.update(session_id, lambda record: record.__setitem__("updated_at", unix_now()))
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
    if len(_conversations) >= CONVERSATIONS_MAX:
        del _conversations[next(iter(_conversations))]  # the oldest hint goes
    _conversations[session_id] = session["conversation_id"]
    prepared = _advance(session_id, session["device_id"], handshake_id, session["conversation_id"], frame)
    if prepared is not None:
        [result] = await sessions.advance_and_append([prepared])
        if result.outcome in (APPENDED, REPLAYED):
            return FrameOutcome(relayed=await _relayed(prepared, result))
    # the session changed since it was read
    return FrameOutcome(replies=[session_frames.unauthorized_session_frame(session_id, handshake_id)])


def _prepare(device_id: str, frame: dict[str, Any], kind: str) -> Advance | None:
    """The store step for an encrypted frame of a session seen acknowledged here; None for any other frame."""
    if kind not in ENCRYPTED_KINDS:
        return None
    session_id = alias(frame, "session_id", "sessionId")
    conversation_id = _conversations.get(session_id) if session_id else None
    if conversation_id is None:
        return None
    return _advance(session_id, device_id, alias(frame, "handshake_id", "handshakeId"), conversation_id, frame)


def _advance(
    session_id: str, device_id: str, handshake_id: str, conversation_id: str, frame: dict[str, Any]
) -> Advance | None:
    """None when the frame is no valid envelope (docs/protocol/relay.md §5.6)."""
    out = dict(frame)
    out["conversation_id"] = conversation_id
    if envelope.violation(out) is not None:
        return None
    seq = envelope.parse_seq(out["seq"])
    if seq is None:
        return None
    expect = {"device_id": device_id, "conversation_id": conversation_id, "status": ACKNOWLEDGED}
    if handshake_id:
        expect["handshake_id"] = handshake_id
    return Advance(
        session_id=session_id,
        expect=expect,
        seq=seq,
        now=unix_now(),
        name="session.event",
        data=dumps(out),
        max_bytes=settings.GATEWAY.session_backlog_bytes,
    )


def _replayed(prepared: Advance) -> None:
    logger.info("agent frame replay dropped", extra={"fields": {"session_id": prepared.session_id}})


async def _relayed(prepared: Advance, result: Advanced) -> int:
    """The event stored by the store step goes to the session's streams (returns its size); a replayed seq is dropped
    (R1, returns 0)."""
    if result.outcome == REPLAYED:
        _replayed(prepared)
        return 0
    await delivery.publish_session_event(
        prepared.session_id, result.event_id, prepared.name, prepared.data, followers=result.followers
    )
    return len(prepared.data)


async def _agent_ack_frame(
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
    proof = ack_proof(frame)
    already = session["status"] == ACKNOWLEDGED
    if already and (proof.agent_key != session["agent_ephemeral_public_key"] or frame.get("status") == "error"):
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
        return await _ack_failed(session_id, out, message)
    try:
        if not (proof.agent_key and proof.signature and proof.transcript_hash):
            raise AckRejected("missing handshake ack fields from agent websocket frame", 400, "")
        if not identity_key:
            raise AckRejected("device identity not found", 404, "")
        raw = crypto.b64decode_strict(proof.agent_key)
        if raw is None:
            raise AckRejected("invalid x25519 public key encoding: not standard padded base64", 400, "")
        if len(raw) != 32:
            raise AckRejected(f"invalid x25519 public key length: got {len(raw)} want 32", 400, "")
        verify_ack(session, identity_key=identity_key, proof=proof)
    except AckRejected as exc:
        if already:  # a failing copy of the accepted ack: refuse it, change nothing
            return FrameOutcome(replies=[{"type": "agent.error", "error": exc.reason, "session_id": session_id}])
        return await _ack_failed(session_id, out, exc.reason)
    try:
        stored = await accept_ack(session_id, proof)
    except ApiError as exc:  # another key's ack won meanwhile (409)
        return FrameOutcome(replies=[{"type": "agent.error", "error": exc.message, "session_id": session_id}])
    out["status"] = ACKNOWLEDGED
    out["updated_at"] = rfc3339(stored["updated_at"])
    return FrameOutcome(event=(session_id, "session.event", dumps(out)))


async def _ack_failed(session_id: str, out: dict[str, Any], message: str) -> FrameOutcome:
    def fail(record: Session) -> None:
        record["status"] = AGENT_ERROR
        record["last_error"] = message
        record["sent_to_connection"] = ""  # a new client-init may hand the request to the agent again
        record["updated_at"] = unix_now()

    await sessions.update(session_id, fail)
    metrics.handshake("failed")
    out["status"] = AGENT_ERROR
    out["error"] = message
    logger.info("agent ack failed", extra={"fields": {"session_id": session_id, "reason": message}})
    return FrameOutcome(event=(session_id, "session.event", dumps(out)))

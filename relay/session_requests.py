"""What the session endpoints read from a request (docs/protocol/relay.md §4.1-4.4): path ids, the idempotency header
and the two JSON bodies, validated in the contract's order. The edges parse with these, then call a service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway_site.errors import BadRequest
from gateway_site.ids import is_valid_id, validate_id
from relay import crypto
from relay.frames import alias


def session_id_param(value: str) -> str:
    return validate_id(value, "session_id")


def handshake_id_param(value: str) -> str:
    return validate_id(value, "handshake_id")


def idempotency_header(value: str | None) -> str | None:
    """docs/protocol/decisions.md R1: absent is fine; present must be non-empty after trimming."""
    if value is None:
        return None
    if not value.strip():
        raise BadRequest("missing X-Idempotency-Key header")
    return value.strip()


@dataclass(frozen=True)
class ClientInit:
    """The body of `POST …/handshake/client-init` (§4.1)."""

    device_id: str
    handshake_id: str
    client_key: str
    nonce: str
    conversation_id: str


def client_init_parse(body: dict[str, Any]) -> ClientInit:
    """Validation steps 3-7 of §4.1, in order."""
    device_id = validate_id(alias(body, "device_id", "deviceId"), "device_id")
    nonce = alias(body, "client_session_nonce", "clientSessionNonce")
    if not nonce:
        raise BadRequest("device_id, handshake_id, and client_session_nonce are required")
    handshake_id = validate_id(alias(body, "handshake_id", "handshakeId"), "handshake_id")
    conversation_id = alias(body, "conversation_id", "conversationId")
    if conversation_id and not is_valid_id(conversation_id):
        raise BadRequest("invalid conversation_id")
    client_key = alias(body, "client_ephemeral_public_key", "clientEphemeralPublicKey")
    if not crypto.is_key32(client_key):
        raise BadRequest("invalid ephemeral public key")
    return ClientInit(device_id, handshake_id, client_key, nonce, conversation_id)


@dataclass(frozen=True)
class AckProof:
    """What an agent's handshake ack claims: its ephemeral key, the signature and the transcript hash."""

    agent_key: str
    signature: str
    transcript_hash: str


@dataclass(frozen=True)
class HttpAck:
    """The body of `POST …/handshake/agent-ack` (§4.3)."""

    device_id: str
    handshake_id: str
    proof: AckProof


def ack_proof(data: dict[str, Any]) -> AckProof:
    """The ack fields of an HTTP body or an agent frame (either spelling)."""
    return AckProof(
        alias(data, "agent_ephemeral_public_key", "agentEphemeralPublicKey"),
        alias(data, "agent_identity_signature", "agentIdentitySignature"),
        alias(data, "transcript_hash", "transcriptHash"),
    )


def agent_ack_parse(body: dict[str, Any]) -> HttpAck:
    """Steps 3-5 of §4.3."""
    device_id = validate_id(alias(body, "device_id", "deviceId"), "device_id")
    handshake_id = validate_id(alias(body, "handshake_id", "handshakeId"), "handshake_id")
    proof = ack_proof(body)
    if not crypto.is_key32(proof.agent_key):
        raise BadRequest("invalid ephemeral public key")
    return HttpAck(device_id, handshake_id, proof)

"""Test-side end-to-end encryption, as docs/protocol/e2ee.md describes it (the clients' side; the gateway never does
this)."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = {"client_to_agent": b"c2a\0", "agent_to_client": b"a2c\0"}
INFO = b"commands.com/gateway/v1/e2ee"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def raw_public(key: X25519PrivateKey | Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def transcript(s: str, h: str, pc_b64: str, nonce: str, pa_b64: str) -> bytes:
    return hashlib.sha256(f"{s}|{h}|{pc_b64}|{nonce}|{pa_b64}".encode()).digest()


def session_keys(shared: bytes, t: bytes) -> tuple[bytes, bytes, bytes]:
    okm = HKDF(hashes.SHA256(), 96, salt=t, info=INFO).derive(shared)
    return okm[:32], okm[32:64], okm[64:]


def seal(key: bytes, direction: str, seq: int, session_id: str, message_id: str, plaintext: str) -> dict[str, Any]:
    nonce = PREFIX[direction] + struct.pack(">Q", seq)
    aad = f"{session_id}|{message_id}|{seq}|{direction}".encode()
    out = AESGCM(key).encrypt(nonce, plaintext.encode(), aad)
    return {
        "encrypted": True,
        "alg": "aes-256-gcm",
        "direction": direction,
        "seq": seq,
        "nonce": b64(nonce),
        "ciphertext": b64(out[:-16]),
        "tag": b64(out[-16:]),
        "aad": b64(aad),
    }


class DecryptError(Exception):
    pass


def open_frame(key: bytes, frame: dict[str, Any], expected_direction: str, expected_seq: int | None = None) -> str:
    """Decrypt the way the clients do: direction and seq must match the nonce, then AES-GCM with the carried AAD."""
    if frame.get("direction") != expected_direction:
        raise DecryptError("wrong direction")
    seq = frame["seq"]
    if expected_seq is not None and seq != expected_seq:
        raise DecryptError(f"unexpected seq {seq}")
    nonce = unb64(frame["nonce"])
    if nonce != PREFIX[expected_direction] + struct.pack(">Q", seq):
        raise DecryptError("nonce mismatch for sequence/direction")
    aad = unb64(frame["aad"]) if frame.get("aad") else None
    try:
        return AESGCM(key).decrypt(nonce, unb64(frame["ciphertext"]) + unb64(frame["tag"]), aad).decode()
    except Exception as exc:
        raise DecryptError(str(exc) or exc.__class__.__name__) from None


@dataclass
class ClientSide:
    """A client (desktop/console) half of one session."""

    session_id: str
    handshake_id: str
    device_id: str
    ephemeral: X25519PrivateKey
    nonce: str
    c2a: bytes = b""
    a2c: bytes = b""
    seq: int = 0

    @classmethod
    def new(cls, session_id: str, handshake_id: str, device_id: str) -> ClientSide:
        import os

        return cls(session_id, handshake_id, device_id, X25519PrivateKey.generate(), b64(os.urandom(16)))

    @property
    def public_b64(self) -> str:
        return b64(raw_public(self.ephemeral))

    def init_body(self, conversation_id: str | None = None) -> dict[str, Any]:
        body = {
            "handshake_id": self.handshake_id,
            "device_id": self.device_id,
            "client_ephemeral_public_key": self.public_b64,
            "client_session_nonce": self.nonce,
        }
        if conversation_id:
            body["conversation_id"] = conversation_id
        return body

    def complete(self, handshake: dict[str, Any], identity_public_b64: str) -> None:
        """Verify the agent's signature over our own transcript, then derive the keys (as the desktop does)."""
        pa = handshake["agent_ephemeral_public_key"]
        t = transcript(self.session_id, self.handshake_id, self.public_b64, self.nonce, pa)
        if b64(t) != handshake["transcript_hash"]:
            raise DecryptError("transcript mismatch")
        Ed25519PublicKey.from_public_bytes(unb64(identity_public_b64)).verify(
            unb64(handshake["agent_identity_signature"]), t
        )
        shared = self.ephemeral.exchange(X25519PublicKey.from_public_bytes(unb64(pa)))
        self.c2a, self.a2c, _ = session_keys(shared, t)

    def message(self, prompt: str, message_id: str) -> dict[str, Any]:
        self.seq += 1
        plaintext = json.dumps({"session_id": self.session_id, "message_id": message_id, "prompt": prompt})
        frame = seal(self.c2a, "client_to_agent", self.seq, self.session_id, message_id, plaintext)
        frame.update(
            {
                "type": "session.message",
                "session_id": self.session_id,
                "message_id": message_id,
                "handshake_id": self.handshake_id,
            }
        )
        return frame


@dataclass
class AgentSide:
    """The agent half: a long-term Ed25519 identity and per-handshake keys."""

    identity: Ed25519PrivateKey
    sessions: dict[str, dict[str, Any]]

    @classmethod
    def new(cls) -> AgentSide:
        return cls(Ed25519PrivateKey.generate(), {})

    @property
    def identity_b64(self) -> str:
        return b64(raw_public(self.identity))

    def ack(self, request: dict[str, Any]) -> dict[str, Any]:
        s, h = request["session_id"], request["handshake_id"]
        ephemeral = X25519PrivateKey.generate()
        pa = b64(raw_public(ephemeral))
        t = transcript(s, h, request["client_ephemeral_public_key"], request["client_session_nonce"], pa)
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(unb64(request["client_ephemeral_public_key"])))
        c2a, a2c, _ = session_keys(shared, t)
        self.sessions[s] = {"c2a": c2a, "a2c": a2c, "recv": 0, "send": 0, "handshake_id": h}
        return {
            "device_id": request["device_id"],
            "handshake_id": h,
            "agent_ephemeral_public_key": pa,
            "agent_identity_signature": b64(self.identity.sign(t)),
            "transcript_hash": b64(t),
        }

    def read(self, frame: dict[str, Any]) -> dict[str, Any]:
        state = self.sessions[frame["session_id"]]
        state["recv"] += 1
        return json.loads(open_frame(state["c2a"], frame, "client_to_agent", state["recv"]))

    def reply(self, session_id: str, kind: str, message_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        state = self.sessions[session_id]
        state["send"] += 1
        plaintext = json.dumps({**payload, "session_id": session_id, "message_id": message_id})
        frame = seal(state["a2c"], "agent_to_client", state["send"], session_id, message_id, plaintext)
        frame.update(
            {"type": kind, "session_id": session_id, "message_id": message_id, "handshake_id": state["handshake_id"]}
        )
        return frame

"""The gateway's part of the end-to-end encryption (docs/protocol/e2ee.md §3): the transcript and the agent's signature.

The gateway never decrypts; it only checks that the agent signed the transcript of this very handshake with the
device's registered Ed25519 identity key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

_STD_B64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def b64decode_strict(text: object) -> bytes | None:
    """Standard alphabet, padding required; None for anything else."""
    if not isinstance(text, str) or not _STD_B64.fullmatch(text):
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def is_key32(text: object) -> bool:
    """Standard padded base64 of exactly 32 bytes (X25519 public keys; not checked to be curve points)."""
    raw = b64decode_strict(text)
    return raw is not None and len(raw) == 32


def transcript(session_id: str, handshake_id: str, client_key: str, nonce: str, agent_key: str) -> bytes:
    """SHA-256 of `S|H|Pc|N|Pa`, the base64 texts exactly as transmitted."""
    return hashlib.sha256(f"{session_id}|{handshake_id}|{client_key}|{nonce}|{agent_key}".encode()).digest()


def transcript_matches(expected: bytes, posted_b64: object) -> bool:
    """Byte comparison in constant time; an undecodable hash is a mismatch."""
    posted = b64decode_strict(posted_b64)
    return posted is not None and hmac.compare_digest(expected, posted)


class SignatureError(Exception):
    """The detail after `signature verification failed: ` (e.g. `invalid agent identity signature`)."""


def verify_signature(identity_key_b64: str, digest: bytes, signature_b64: object) -> None:
    """Ed25519 over the 32 raw transcript bytes with the device's identity key; raises SignatureError."""
    key = b64decode_strict(identity_key_b64)
    if key is None or len(key) != 32:
        raise SignatureError("invalid identity public key")
    signature = b64decode_strict(signature_b64)
    if signature is None:
        raise SignatureError("invalid signature encoding")
    if len(signature) != 64:
        raise SignatureError(f"invalid signature length: got {len(signature)} want 64")
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(signature, digest)
    except (InvalidSignature, ValueError):
        raise SignatureError("invalid agent identity signature") from None

"""Transport tokens for agent sockets (docs/protocol/relay.md §5.7, docs/protocol/decisions.md R2).

token = base64url(payload) "." base64url(HMAC-SHA256(secret, payload)), where payload is device_id, connection_id
and expires_at (RFC 3339), each as a 2-byte big-endian length and the UTF-8 bytes. The HMAC key is the UTF-8 of the
secret string (for the derived secret: its hex text, not the decoded bytes).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
from datetime import UTC, datetime

from gateway_site.timefmt import RFC3339_FORMAT

_B64URL = re.compile(r"[A-Za-z0-9_-]*")


class TransportError(Exception):
    """A frame's transport token or t_seq is not acceptable; the message is the violation name (logs only)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def payload(device_id: str, connection_id: str, expires_at: str) -> bytes:
    out = b""
    for part in (device_id, connection_id, expires_at):
        data = part.encode("utf-8")
        out += struct.pack(">H", len(data)) + data
    return out


def mint(secret: str, device_id: str, connection_id: str, expires_at: str) -> str:
    body = payload(device_id, connection_id, expires_at)
    signature = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return f"{_b64(body)}.{_b64(signature)}"


def _parse_payload(body: bytes) -> list[str]:
    parts: list[str] = []
    offset = 0
    for _ in range(3):
        if offset + 2 > len(body):
            raise ValueError("truncated")
        (length,) = struct.unpack(">H", body[offset : offset + 2])
        offset += 2
        if offset + length > len(body):
            raise ValueError("truncated")
        parts.append(body[offset : offset + length].decode("utf-8"))
        offset += length
    if offset != len(body):
        raise ValueError("trailing bytes")
    return parts


def verify(secret: str, token: object, *, device_id: str, connection_id: str, now: float) -> None:
    """Check a token against the socket it arrived on; raises TransportError(<violation>)."""
    if not isinstance(token, str) or not token:
        raise TransportError("missing_transport_token")
    body_text, dot, signature_text = token.partition(".")
    if not dot:
        raise TransportError("malformed_token")
    try:
        body = _unb64(body_text)
    except (ValueError, binascii.Error):
        raise TransportError("invalid_token_encoding") from None
    try:
        signature = _unb64(signature_text)
    except (ValueError, binascii.Error):
        raise TransportError("invalid_signature_encoding") from None
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        raise TransportError("invalid_signature")
    try:
        token_device, token_connection, expires_text = _parse_payload(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TransportError(f"invalid_token_payload: {exc}") from None
    if token_device != device_id:
        raise TransportError("device_id_mismatch")
    if token_connection != connection_id:
        raise TransportError("connection_id_mismatch")
    try:
        expires = datetime.strptime(expires_text, RFC3339_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise TransportError("invalid_expiry") from None
    if now > expires.timestamp():
        raise TransportError("token_expired")


def check_t_seq(value: object, last: int) -> int:
    """A t_seq must be a positive integer strictly greater than the last accepted one; returns it."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise TransportError("invalid_t_seq")
    if value <= last:
        raise TransportError("transport_replay_detected")
    return value

"""Agent socket frames (docs/protocol/relay.md §5.4-5.6): building gateway frames, reading agent frames, transport
checks."""

from __future__ import annotations

from typing import Any

from gateway_site.timefmt import rfc3339
from relay import transport
from relay.transport import TransportError

EXEMPT_TYPES = frozenset({"agent.hello", "heartbeat", "ping"})
TRANSPORT_FIELDS = ("transport_token", "t_seq", "connection_id")

__all__ = ["TransportError"]


def frame_type(frame: dict[str, Any]) -> str:
    """The frame's `type`, else its `event` (strings only)."""
    for key in ("type", "event"):
        value = frame.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def alias(data: dict[str, Any], snake: str, camel: str) -> str:
    """`snake_case | camelCase` (docs/protocol/relay.md §1): only JSON strings count, trimmed, empty means absent; snake
    wins."""
    for key in (snake, camel):
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def session_id_of(frame: dict[str, Any]) -> str:
    return alias(frame, "session_id", "sessionId")


def handshake_id_of(frame: dict[str, Any]) -> str:
    return alias(frame, "handshake_id", "handshakeId")


def gateway_connected(device_id: str, now: float) -> dict[str, Any]:
    return {"type": "gateway.connected", "device_id": device_id, "at": rfc3339(now)}


def transport_init(*, secret: str, device_id: str, connection_id: str, ttl: int, now: float) -> dict[str, Any]:
    token = transport.mint(secret, device_id, connection_id, rfc3339(now + ttl))
    return {
        "type": "transport.init",
        "device_id": device_id,
        "connection_id": connection_id,
        "transport_token": token,
        "expires_in": ttl,
        "at": rfc3339(now),
    }


def heartbeat(device_id: str, now: float) -> dict[str, Any]:
    return {"type": "heartbeat", "device_id": device_id, "at": rfc3339(now)}


def check_transport(
    frame: dict[str, Any],
    *,
    secret: str,
    mode: str,
    device_id: str,
    connection_id: str,
    last_t_seq: int,
    now: float,
) -> int:
    """docs/protocol/decisions.md R2. Returns the socket's new last t_seq; raises TransportError when the frame must be
    dropped.

    `optional`: a frame without `transport_token` passes untouched; one with a token is fully verified.
    `required`: every non-exempt frame needs a valid token and a fresh t_seq.
    """
    token = frame.get("transport_token")
    if token is None and mode == "optional":
        return last_t_seq
    transport.verify(secret, token, device_id=device_id, connection_id=connection_id, now=now)
    return transport.check_t_seq(frame.get("t_seq"), last_t_seq)


def strip_transport(frame: dict[str, Any]) -> dict[str, Any]:
    """The frame without its transport fields: a copy when it has any, else the frame itself (no copy per frame)."""
    if not any(key in frame for key in TRANSPORT_FIELDS):
        return frame
    return {key: value for key, value in frame.items() if key not in TRANSPORT_FIELDS}

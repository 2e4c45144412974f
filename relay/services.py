"""Device rules (docs/protocol/devices-and-shares.md §1-7, §13 with docs/protocol/decisions.md D1): identity keys,
listing, visibility, deletion, and the checks that admit an agent socket (docs/protocol/relay.md §5.1)."""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.db import transaction

from gateway_site import outage
from gateway_site.auth import Principal
from gateway_site.errors import BadRequest, Forbidden, NotFound, TooManyRequests
from gateway_site.ids import canonical_email, is_valid_id, validate_id
from gateway_site.jsonbody import field
from gateway_site.leases import leases
from gateway_site.timefmt import rfc3339
from relay import access
from relay.models import Device
from relay.registry import agents
from relay.stores import PRESENCE_TTL_SECONDS, Presence, presence

MAX_DEVICES_PER_OWNER = 200
MAX_DISPLAY_NAME = 128
MAX_AGENT_SOCKETS_PER_OWNER = 50


# -- identity keys ------------------------------------------------------------------------------------------------


def _decode_public_key(value: str) -> str:
    """Standard base64 (line breaks ignored) of exactly 32 bytes; returns the canonical encoding."""
    text = value.replace("\r", "").replace("\n", "")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("invalid public key") from None
    if len(raw) != 32:
        raise BadRequest("invalid public key")
    return base64.b64encode(raw).decode("ascii")


def _string_field(data: dict[str, Any], name: str) -> str:
    value = field(data, name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest("invalid request body")
    return value


def device_identity_put(*, principal: Principal, device_id: str, body: dict[str, Any]) -> None:
    """Register a device or update its key and name (§4). Idempotent; does not touch presence."""
    algorithm = _string_field(body, "algorithm")
    keys = [_string_field(body, name).strip() for name in ("public_key", "identityKey", "identity_key")]
    name = _string_field(body, "display_name").strip()
    if algorithm.strip() and algorithm != "ed25519":
        raise BadRequest("unsupported algorithm")
    key_text = next((k for k in keys if k), "")
    if not key_text:
        raise BadRequest("invalid public key")
    public_key = _decode_public_key(key_text)
    if len(name) > MAX_DISPLAY_NAME:
        raise BadRequest(f"display_name must be at most {MAX_DISPLAY_NAME} characters")
    now = datetime.now(tz=UTC)
    with transaction.atomic():
        device = Device.objects.filter(device_id=device_id).first()
        if device is not None:
            if not access.is_owner(device, principal, email_fallback=True):
                raise Forbidden("you do not own this device")
            device.owner_uid = principal.uid
            device.owner_email = canonical_email(principal.email)
            device.public_key = public_key
            if name:
                device.display_name = name
            device.updated_at = now
            device.save(update_fields=["owner_uid", "owner_email", "public_key", "display_name", "updated_at"])
            return
        if Device.objects.filter(owner_uid=principal.uid).count() >= MAX_DEVICES_PER_OWNER:
            raise TooManyRequests("too many registered devices")
        Device.objects.create(
            device_id=device_id,
            display_name=name,
            owner_uid=principal.uid,
            owner_email=canonical_email(principal.email),
            public_key=public_key,
            updated_at=now,
        )


def device_identity_get(*, principal: Principal, device_id: str) -> dict[str, str]:
    """The registered key (§5): owner (demo email fallback) or an active grantee."""
    device = Device.objects.filter(device_id=device_id).first()
    if device is None:
        raise NotFound("device not found")
    if not access.can_read_identity(device, principal):
        raise Forbidden("forbidden")
    if not device.public_key:
        raise NotFound("device identity not found")
    return {
        "algorithm": "ed25519",
        "public_key": device.public_key,
        "updated_at": rfc3339(device.updated_at or device.created_at),
    }


# -- visibility and listing ---------------------------------------------------------------------------------------


async def _visible_with_presence(principal: Principal) -> tuple[list[access.DeviceAccess], dict[str, Presence]]:
    """The devices `principal` may see (a database read, in a worker thread) and their presence records.

    While the shared state is unreachable (docs/scaling.md, "When Redis is down") the devices are still listed, from
    the database, all offline: no agent can be reached through this gateway then anyway."""
    accesses = await sync_to_async(access.visible_devices)(principal)
    try:
        records = await presence.get_many([a.device.device_id for a in accesses])
    except Exception as exc:
        if outage.unavailable(exc) is None:
            raise
        records = {}
    return accesses, records


def _online(record: Presence | None, now: float) -> bool:
    return record is not None and record.online(now)


async def device_list(*, principal: Principal) -> list[dict[str, Any]]:
    """`GET /devices` (§6): online first, then updated_at descending, then device_id."""
    now = time.time()
    accesses, records = await _visible_with_presence(principal)
    rows: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    for entry in accesses:
        device = entry.device
        record = records.get(device.device_id)
        online = _online(record, now)
        updated = device.updated_at or datetime.fromtimestamp(now, tz=UTC)
        name = device.display_name or device.device_id
        item: dict[str, Any] = {"device_id": device.device_id, "display_name": name, "name": name}
        item["owner_uid"] = device.owner_uid
        if device.owner_email:
            item["owner_email"] = device.owner_email
        item.update(
            {
                "algorithm": "ed25519",
                "status": "online" if online else "offline",
                "connected": online,
                "updated_at": rfc3339(updated),
            }
        )
        if online and record is not None:
            item["connected_at"] = rfc3339(record.connected_at)
            item["last_seen_at"] = rfc3339(record.last_seen_at)
        item["device_class"] = "agent"
        item["role"] = entry.role
        if entry.role == "collaborator":
            item["grant_id"] = entry.grant_id
        rows.append(((0 if online else 1, -updated.timestamp(), device.device_id), item))
    rows.sort(key=lambda row: row[0])
    return [item for _, item in rows]


async def device_view(*, principal: Principal) -> tuple[dict[str, tuple[str, str]], int]:
    """The events stream's view: visible device id -> (status, at), `at` = last_seen_at when online, else '';
    and the earliest future grant expiry among the shared devices (0 if none), when the view changes by itself."""
    now = time.time()
    accesses, records = await _visible_with_presence(principal)
    statuses: dict[str, tuple[str, str]] = {}
    for entry in accesses:
        record = records.get(entry.device.device_id)
        if _online(record, now) and record is not None:
            statuses[entry.device.device_id] = ("online", rfc3339(record.last_seen_at))
        else:
            statuses[entry.device.device_id] = ("offline", "")
    # A grant is active through the whole second of its `expires_at` (shares.permissions.effective_status), so one
    # that expires in the current second still needs its wake.
    expiries = [
        a.expires_at for a in accesses if a.role == "collaborator" and a.expires_at > 0 and a.expires_at + 1 > now
    ]
    return statuses, int(min(expiries)) if expiries else 0


def owned_device_count(uid: str) -> int:
    return Device.objects.filter(owner_uid=uid).count()


def health_counts(principal: Principal) -> dict[str, int]:
    """The relay's counters of `GET /gateway/v1/health`: the caller's devices; this node's agent sockets."""
    return {"devices": owned_device_count(principal.uid), "agents": agents.count()}


def metrics_gauges() -> dict[str, float]:
    """The relay's live gauge of /metrics (gateway_site.metrics): this process's agent sockets."""
    return {"agents_connected": agents.count()}


# -- deletion (docs/protocol/decisions.md D1) --------------------------------------------------------------------------


def device_delete(*, principal: Principal, device_id: str) -> list[str]:
    """Delete an owned device and its identity key. Returns the uids whose device streams must drop it (its presence
    goes with the `device_deleted` signal, relay.signals).

    404 for an unknown id or one the caller cannot see; 403 for a collaborator.
    """
    device = Device.objects.filter(device_id=device_id).first()
    if device is None:
        raise NotFound("device not found")
    entry = access.device_access(device, principal)
    if entry is None:
        raise NotFound("device not found")
    if entry.role != "owner":
        raise Forbidden("you do not own this device")
    affected = access.users_with_access(device_id)
    device.delete()  # its grants go with it (shares.Grant cascades)
    for uid in affected:
        access.forget_access(device_id, uid)
    return affected


# -- agent socket admission (docs/protocol/relay.md §5.1) --------------------------------------------------------------


@dataclass(frozen=True)
class AgentAdmission:
    device_id: str
    owner_uid: str
    # Whose device streams hear about this socket's presence, read once per connection (one database trip for
    # admission and audience together; a disconnect reuses it rather than querying again).
    audience: tuple[str, ...] = ()


def socket_device(*, principal: Principal, device_id: str | None) -> Device:
    """The device an agent or tunnel socket asks for: the `device_id` query parameter must be a valid id of a
    device the caller owns by uid (docs/protocol/relay.md §5.1 checks 2-5, docs/protocol/tunnels.md §3 checks 2-5)."""
    if device_id is None or not is_valid_id(device_id):
        raise BadRequest("device_id query param is required")
    device = Device.objects.filter(device_id=device_id.strip()).first()
    if device is None:
        raise BadRequest("device_not_found")
    if device.owner_uid != principal.uid:
        raise Forbidden("forbidden")
    return device


def agent_admit(*, principal: Principal, device_id: str | None, x_device_id: str | None) -> AgentAdmission:
    """Checks 2-7 before the upgrade (the database's part); raises the contract's error for the first that fails.
    Check 8, the owner's number of sockets, is `agent_socket_claim`."""
    device = socket_device(principal=principal, device_id=device_id)
    device_id = device.device_id
    if x_device_id is not None and x_device_id.strip():  # a blank header counts as absent, as upstream
        if not is_valid_id(x_device_id):
            raise BadRequest("invalid X-Device-Id header")
        if x_device_id.strip() != device_id:
            raise BadRequest("X-Device-Id header does not match device_id query param")
    return AgentAdmission(
        device_id=device_id, owner_uid=device.owner_uid, audience=tuple(access.users_with_access(device_id))
    )


# -- sockets per owner (docs/protocol/decisions.md H3) -----------------------------------------------------------------
#
# An owner's agent sockets (and, through the same helpers, tunnel sockets) are counted across every process as leases
# (gateway_site.leases), one per device: the lease id is the device id, so a socket that replaces the device's
# previous one takes the same place. A socket renews its lease while it lives (SOCKET_LEASE_SECONDS, renewed with its
# presence), so the places of a process that died come back by themselves.
SOCKET_LEASE_SECONDS = PRESENCE_TTL_SECONDS


def _socket_key(kind: str, owner_uid: str) -> str:
    return f"{kind}-sockets:{owner_uid}"


async def socket_room(kind: str, owner_uid: str, device_id: str, limit: int) -> bool:
    """Whether the device could connect a `kind` socket now (without taking a place)."""
    holders = await leases.holders(_socket_key(kind, owner_uid))
    return device_id in holders or len(holders) < limit


async def socket_claim(kind: str, owner_uid: str, device_id: str, limit: int) -> bool:
    """Take the device's place among the owner's `kind` sockets; False when the owner holds `limit` already."""
    return await leases.acquire(_socket_key(kind, owner_uid), limit, device_id, SOCKET_LEASE_SECONDS)


async def socket_renew(kind: str, owner_uid: str, device_id: str, limit: int) -> None:
    """Keep the place; one that lapsed (or that a concurrent teardown released) is taken again if there is room."""
    key = _socket_key(kind, owner_uid)
    if not await leases.renew(key, device_id, SOCKET_LEASE_SECONDS):
        await leases.acquire(key, limit, device_id, SOCKET_LEASE_SECONDS)


async def socket_release(kind: str, owner_uid: str, device_id: str) -> None:
    await leases.release(_socket_key(kind, owner_uid), device_id)


async def agent_socket_check(admission: AgentAdmission) -> None:
    """Check 8 for a plain HTTP request to the socket's endpoint: 429 when the owner could not connect it now."""
    if not await socket_room("agent", admission.owner_uid, admission.device_id, MAX_AGENT_SOCKETS_PER_OWNER):
        raise TooManyRequests("too many agent connections")


async def agent_socket_claim(admission: AgentAdmission) -> None:
    """Check 8 before the upgrade, atomically across processes: the device takes its place among its owner's agent
    sockets, or 429."""
    if not await socket_claim("agent", admission.owner_uid, admission.device_id, MAX_AGENT_SOCKETS_PER_OWNER):
        raise TooManyRequests("too many agent connections")


def validate_device_path(device_id: str) -> str:
    return validate_id(device_id, "device_id")

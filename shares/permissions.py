"""The one answer to "may this principal use this device, and as what?" (docs/protocol/devices-and-shares.md §3, §8.2,
§10).

Every app asks here: the device list and events stream, identity-key reads, and relay sessions. Grants are read at
request time, never cached, so revoke, leave and expiry take effect on the next check.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q

from gateway_site.auth import Principal
from gateway_site.ids import canonical_email
from relay.models import Device
from shares.models import Grant


def now() -> int:
    return int(time.time())


def effective_status(grant: Grant, at: int | None = None) -> str:
    """§8.2: a pending invite past its token expiry, or a grant past its own expiry, is expired."""
    current = now() if at is None else at
    status = grant.status
    if status == Grant.PENDING and grant.invite_token_expires_at > 0 and current > grant.invite_token_expires_at:
        return Grant.EXPIRED
    if status in (Grant.PENDING, Grant.ACTIVE) and grant.grant_expires_at > 0 and current > grant.grant_expires_at:
        return Grant.EXPIRED
    return status


@dataclass(frozen=True)
class DeviceAccess:
    device: Device
    role: str  # "owner" or "collaborator"
    grant_id: str = ""
    expires_at: int = 0  # a collaborator's grant expiry (0: never)


def _active_grants(**filters: object) -> list[Grant]:
    """Grants stored as active whose own expiry has not passed."""
    current = now()
    grants = Grant.objects.select_related("device").filter(status=Grant.ACTIVE, **filters)
    grants = grants.filter(Q(grant_expires_at__lte=0) | Q(grant_expires_at__gte=current))
    return [g for g in grants if effective_status(g, current) == Grant.ACTIVE]


def active_grant(device_id: str, uid: str) -> Grant | None:
    grants = _active_grants(device_id=device_id, grantee_uid=uid)
    return grants[0] if grants else None


def device_access(device: Device, principal: Principal) -> DeviceAccess | None:
    """Owner by uid, else collaborator through an effectively active grant, else None."""
    if device.owner_uid == principal.uid:
        return DeviceAccess(device, "owner")
    grant = active_grant(device.device_id, principal.uid)
    if grant is not None:
        return DeviceAccess(device, "collaborator", grant.grant_id, grant.grant_expires_at)
    return None


def is_owner(device: Device, principal: Principal, *, email_fallback: bool = False) -> bool:
    """Owner by uid; with `email_fallback` and only in demo mode, also by canonical email (§3)."""
    if device.owner_uid == principal.uid:
        return True
    if email_fallback and settings.GATEWAY.auth_mode == "demo":
        email = canonical_email(principal.email)
        return bool(email) and email == device.owner_email
    return False


def can_read_identity(device: Device, principal: Principal) -> bool:
    """GET identity-key: the owner (demo email fallback) or an active grantee."""
    return is_owner(device, principal, email_fallback=True) or device_access(device, principal) is not None


def can_use_device(device: Device, principal: Principal) -> bool:
    """Session membership (docs/protocol/relay.md §2): the owner by uid or an active grantee."""
    return device_access(device, principal) is not None


def visible_devices(principal: Principal) -> list[DeviceAccess]:
    """Owned devices (by uid) and devices shared through an active grant; an owned device appears once, as owner."""
    owned = [DeviceAccess(d, "owner") for d in Device.objects.filter(owner_uid=principal.uid)]
    seen = {a.device.device_id for a in owned}
    shared = []
    for grant in _active_grants(grantee_uid=principal.uid):
        if grant.device_id not in seen:
            seen.add(grant.device_id)
            shared.append(DeviceAccess(grant.device, "collaborator", grant.grant_id, grant.grant_expires_at))
    return owned + shared


ACCESS_CACHE_SECONDS = 60


def _access_key(device_id: str, uid: str) -> str:
    import hashlib

    return "access:" + hashlib.sha256(f"{device_id}\n{uid}".encode()).hexdigest()


def collaborator_access_cached(device_id: str, uid: str) -> bool:
    """Whether `uid` holds an active grant on the device, for the relay's hot path.

    A positive answer is remembered for at most a minute and never past the grant's own expiry; revoke, leave and
    device deletion forget it at once (`forget_access`). Negative answers are not remembered, so an accept counts
    immediately.
    """
    from django.core.cache import caches

    cache = caches["state"]
    key = _access_key(device_id, uid)
    until = cache.get(key)
    current = now()
    if until is not None and current <= until:
        return True
    grant = active_grant(device_id, uid)
    if grant is None:
        return False
    until = current + ACCESS_CACHE_SECONDS
    if grant.grant_expires_at > 0:
        until = min(until, grant.grant_expires_at)
    cache.set(key, until, timeout=ACCESS_CACHE_SECONDS)
    return True


def forget_access(device_id: str, uid: str) -> None:
    from django.core.cache import caches

    caches["state"].delete(_access_key(device_id, uid))


def users_with_access(device_id: str) -> list[str]:
    """The owner and every active grantee: whoever must hear about the device's presence."""
    device = Device.objects.filter(device_id=device_id).first()
    if device is None:
        return []
    return [device.owner_uid, *(g.grantee_uid for g in _active_grants(device_id=device_id))]

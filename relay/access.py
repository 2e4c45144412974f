"""The one answer to "may this principal use this device, and as what?" (docs/protocol/devices-and-shares.md §3,
§8.2, §10).

Every relay path asks here: the device list and events stream, identity-key reads, sessions. Owners are known from
the device row; collaborators from grants, which the sharing app supplies through a `GrantSource` named in settings
(`GATEWAY_GRANT_SOURCE`), so the relay does not import it (the sharing app builds on the relay, not the reverse).
Grants are read at request time; only the per-frame membership check (`collaborator_access_cached`) remembers a
positive answer, for at most a minute and never past the grant's expiry, in the shared key/value store (so that
revoking on one process forgets it on all of them, docs/scaling.md).
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string

from gateway_site.auth import Principal
from gateway_site.ids import canonical_email
from gateway_site.kvstore import SyncKeyValueStore, blocking, kv_store
from relay.models import Device

ACCESS_CACHE_SECONDS = 60
MAX_ACCESS_ENTRIES = 200_000


def now() -> int:
    return int(time.time())


@dataclass(frozen=True)
class GrantView:
    """An effectively active grant, as the relay needs it."""

    grant_id: str
    device: Device
    grantee_uid: str
    expires_at: int = 0  # 0: never


class GrantSource(Protocol):
    def active_grant(self, device_id: str, uid: str) -> GrantView | None: ...

    def active_grants_of_user(self, uid: str) -> Iterable[GrantView]: ...

    def active_grants_of_device(self, device_id: str) -> Iterable[GrantView]: ...


class NoGrants:
    """Owner-only access: the source when no sharing app is installed."""

    def active_grant(self, device_id: str, uid: str) -> GrantView | None:
        return None

    def active_grants_of_user(self, uid: str) -> Iterable[GrantView]:
        return ()

    def active_grants_of_device(self, device_id: str) -> Iterable[GrantView]:
        return ()


@functools.cache
def grants() -> GrantSource:
    name = getattr(settings, "GATEWAY_GRANT_SOURCE", "")
    source: GrantSource = import_string(name)() if name else NoGrants()
    return source


@dataclass(frozen=True)
class DeviceAccess:
    device: Device
    role: str  # "owner" or "collaborator"
    grant_id: str = ""
    expires_at: int = 0  # a collaborator's grant expiry (0: never)


def device_access(device: Device, principal: Principal) -> DeviceAccess | None:
    """Owner by uid, else collaborator through an effectively active grant, else None."""
    if device.owner_uid == principal.uid:
        return DeviceAccess(device, "owner")
    grant = grants().active_grant(device.device_id, principal.uid)
    if grant is not None:
        return DeviceAccess(device, "collaborator", grant.grant_id, grant.expires_at)
    return None


def grant_expiry(device_id: str, uid: str) -> int:
    """When `uid`'s grant on the device expires (0: no grant, or one that does not expire)."""
    grant = grants().active_grant(device_id, uid)
    return grant.expires_at if grant is not None and grant.expires_at > 0 else 0


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
    """Session creation (docs/protocol/relay.md §2): the owner by uid or an active grantee."""
    return device_access(device, principal) is not None


def visible_devices(principal: Principal) -> list[DeviceAccess]:
    """Owned devices (by uid) and devices shared through an active grant; an owned device appears once, as owner."""
    owned = [DeviceAccess(d, "owner") for d in Device.objects.filter(owner_uid=principal.uid)]
    seen = {a.device.device_id for a in owned}
    shared = []
    for grant in grants().active_grants_of_user(principal.uid):
        if grant.device.device_id not in seen:
            seen.add(grant.device.device_id)
            shared.append(DeviceAccess(grant.device, "collaborator", grant.grant_id, grant.expires_at))
    return owned + shared


def users_with_access(device_id: str) -> list[str]:
    """The owner and every active grantee: whoever must hear about the device's presence."""
    device = Device.objects.filter(device_id=device_id).first()
    if device is None:
        return []
    return [device.owner_uid, *(g.grantee_uid for g in grants().active_grants_of_device(device_id))]


def _access_key(device_id: str, uid: str) -> str:
    return "access:" + hashlib.sha256(f"{device_id}\n{uid}".encode()).hexdigest()


def collaborator_access_cached(device_id: str, uid: str) -> bool:
    """Whether `uid` holds an active grant on the device, for the relay's hot path.

    A positive answer is remembered for at most a minute and never past the grant's own expiry; revoke, leave and
    device deletion forget it at once (`forget_access`). Negative answers are not remembered, so an accept counts
    immediately.
    """
    cache = _access_cache()
    key = _access_key(device_id, uid)
    until = cache.get(key)
    current = now()
    if until is not None and current <= until:
        return True
    grant = grants().active_grant(device_id, uid)
    if grant is None:
        return False
    until = current + ACCESS_CACHE_SECONDS
    if grant.expires_at > 0:
        until = min(until, grant.expires_at)
    cache.set(key, until)
    return True


def forget_access(device_id: str, uid: str) -> None:
    _access_cache().delete(_access_key(device_id, uid))


def _access_cache() -> SyncKeyValueStore:
    return blocking(kv_store("grant-checks", ttl=ACCESS_CACHE_SECONDS, max_entries=MAX_ACCESS_ENTRIES))

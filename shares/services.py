"""Sharing rules (docs/protocol/devices-and-shares.md §8-9, §12 with docs/protocol/decisions.md D2): invites, accept,
grant history, revoke, leave.

State changes return the uids whose live streams must hear about them; the views announce them through the relay's
delivery seam (relay.delivery) after the transaction.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from gateway_site.auth import Principal
from gateway_site.errors import BadRequest, Conflict, Forbidden, Gone, NotFound, TooManyRequests
from gateway_site.ids import canonical_email, validate_id
from relay import access
from relay.models import Device
from shares import permissions
from shares.models import Grant, InviteToken

DEFAULT_INVITE_TTL = 7 * 86400
MAX_INVITE_TTL = 90 * 86400
INT64 = (-(2**63), 2**63 - 1)


def _now() -> int:
    return permissions.now()


def token_digest(token: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(token.encode("utf-8")).digest()).rstrip(b"=").decode("ascii")


def invite_url(token: str) -> str:
    """docs/protocol/decisions.md D2: always `<PUBLIC_BASE_URL>/share/<token>`, the page this gateway serves
    (FRONTEND_URL, the upstream's base for invite links, is parsed but no longer used: the decision wins)."""
    return f"{settings.GATEWAY.public_base_url}/share/{token}"


def _optional_int(body: dict[str, Any], name: str) -> int:
    """An optional JSON integer (not a string, fraction or boolean); else the body is invalid."""
    value = body.get(name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not INT64[0] <= value <= INT64[1]:
        raise BadRequest("invalid json body")
    return value


def _optional_str(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest("invalid json body")
    return value


@dataclass(frozen=True)
class Invite:
    grant: Grant
    url: str


def invite_create(*, principal: Principal, body: dict[str, Any]) -> Invite:
    """§9.1. Raises the contract's errors in order; returns the pending grant and its one-time URL."""
    device_id_raw = _optional_str(body, "deviceId")
    email_raw = _optional_str(body, "email")
    grant_expires_at = _optional_int(body, "grantExpiresAt")
    ttl = _optional_int(body, "inviteTokenTtlSeconds")
    device_id = validate_id(device_id_raw, "deviceId")
    email = canonical_email(email_raw)
    if not email:
        raise BadRequest("invalid email")
    if email == canonical_email(principal.email):
        raise BadRequest("cannot invite yourself")
    if grant_expires_at > 0 and grant_expires_at <= _now():
        raise BadRequest("grantExpiresAt must be in the future")  # decisions.md H7
    if ttl <= 0:
        ttl = DEFAULT_INVITE_TTL
    if ttl > MAX_INVITE_TTL:
        raise BadRequest("inviteTokenTtlSeconds exceeds maximum")
    device = Device.objects.filter(device_id=device_id).first()
    if device is None:
        raise NotFound("device not found")
    if device.owner_uid != principal.uid:
        raise Forbidden("you do not own this device")
    now = _now()
    with transaction.atomic():
        # The device's row stays locked until commit, so concurrent invites for one device (from any process) count
        # and insert one after another and the cap holds (decisions.md H3). SQLite ignores the lock: it runs one
        # write transaction at a time (the in-memory database's transactions are IMMEDIATE, gateway_site.config).
        Device.objects.select_for_update().filter(pk=device.pk).first()
        existing = Grant.objects.filter(device=device, grantee_email=email, status__in=[Grant.PENDING, Grant.ACTIVE])
        if any(permissions.effective_status(g, now) in (Grant.PENDING, Grant.ACTIVE) for g in existing):
            raise Conflict("an active or pending grant already exists for this email and device")
        pending = Grant.objects.filter(device=device, status=Grant.PENDING, invite_token_expires_at__gt=now).count()
        if pending >= settings.GATEWAY.max_pending_invites_per_device:  # decisions.md H3
            raise TooManyRequests("too many pending invites for this device")
        token = secrets.token_urlsafe(32)
        grant = Grant.objects.create(
            grant_id="gr_" + secrets.token_hex(16),
            device=device,
            owner_uid=principal.uid,
            owner_email=canonical_email(principal.email),
            grantee_email=email,
            invite_token_expires_at=now + ttl,
            grant_expires_at=grant_expires_at,
            created_at=now,
            updated_at=now,
        )
        InviteToken.objects.create(token_hash=token_digest(token), grant=grant)
    return Invite(grant=grant, url=invite_url(token))


@dataclass(frozen=True)
class InvitePreview:
    device_name: str
    owner_email: str
    status: str
    expires_at: int


def invite_preview(token: str) -> InvitePreview | None:
    """What an invite link shares and from whom, for the accept page; None when it is unknown or used."""
    mapping = (
        InviteToken.objects.select_related("grant", "grant__device").filter(token_hash=token_digest(token)).first()
    )
    if mapping is None:
        return None
    grant = mapping.grant
    return InvitePreview(
        device_name=grant.device.display_name or grant.device_id,
        owner_email=grant.owner_email,
        status=permissions.effective_status(grant),
        expires_at=grant.invite_token_expires_at,
    )


def invite_accept(*, principal: Principal, body: dict[str, Any] | None) -> Grant:
    """§9.2, with the caller's email checked before the body. Of two concurrent accepts exactly one wins."""
    email = canonical_email(principal.email)
    if not email:
        raise Forbidden("email is required to accept invites")
    if body is None:
        raise BadRequest("invalid json body")
    token = _optional_str(body, "token").strip()
    grantee_device_raw = _optional_str(body, "deviceId").strip()
    if not token:
        raise BadRequest("token is required")
    if grantee_device_raw:
        grantee_device_id = validate_id(grantee_device_raw, "deviceId")
        own = Device.objects.filter(device_id=grantee_device_id).first()
        if own is None:
            raise BadRequest("invalid deviceId")
        if own.owner_uid != principal.uid:
            raise Forbidden("you do not own this device")
    else:
        grantee_device_id = ""
    digest = token_digest(token)
    # The mapping and its grant in one read: a concurrent accept is seen either wholly before or wholly after.
    # (Row 6 of §9.2, "the mapped grant exists", holds by construction: a grant's deletion cascades to its token.)
    mapping = InviteToken.objects.select_related("grant").filter(token_hash=digest).first()
    if mapping is None:
        raise NotFound("invite not found or already used")
    grant = mapping.grant
    if grant.status != Grant.PENDING:
        raise Conflict(f"invite is {grant.status}")
    now = _now()
    if grant.invite_token_expires_at > 0 and now > grant.invite_token_expires_at:
        with transaction.atomic():
            Grant.objects.filter(pk=grant.pk, status=Grant.PENDING).update(status=Grant.EXPIRED, updated_at=now)
            InviteToken.objects.filter(token_hash=digest).delete()
        raise Gone("invite has expired")
    if email != grant.grantee_email:
        raise Forbidden("email does not match this invite")  # the token is not consumed
    with transaction.atomic():
        # Whoever removes the mapping wins; a concurrent accept finds it gone, as a second accept would.
        if InviteToken.objects.filter(token_hash=digest).delete()[0] != 1:
            raise NotFound("invite not found or already used")
        updated = Grant.objects.filter(pk=grant.pk, status=Grant.PENDING).update(
            status=Grant.ACTIVE,
            grantee_uid=principal.uid,
            grantee_device_id=grantee_device_id,
            accepted_at=now,
            updated_at=now,
        )
        if updated != 1:
            raise NotFound("invite not found or already used")
    grant.refresh_from_db()
    return grant


def grant_history(*, principal: Principal, device_id: str) -> list[dict[str, Any]]:
    """§9.3: every grant ever made for an owned device, with its effective status, oldest first."""
    device_id = validate_id(device_id, "device_id")
    device = Device.objects.filter(device_id=device_id).first()
    if device is None:
        raise NotFound("device not found")
    if device.owner_uid != principal.uid:
        raise Forbidden("you do not own this device")
    now = _now()
    return [
        {
            "grantId": g.grant_id,
            "granteeEmail": g.grantee_email,
            "granteeUid": g.grantee_uid,
            "granteeDeviceId": g.grantee_device_id,
            "role": g.role,
            "status": permissions.effective_status(g, now),
            "grantExpiresAt": g.grant_expires_at,
            "acceptedAt": g.accepted_at,
            "createdAt": g.created_at,
        }
        for g in Grant.objects.filter(device=device).order_by("created", "grant_id")
    ]


@dataclass(frozen=True)
class GrantEnded:
    grant_id: str
    device_id: str
    grantee_uid: str  # '' for a pending invite nobody accepted
    changed: bool  # False when it was already revoked (idempotent repeat)


def _end_grant(*, grant_id: str, principal: Principal, as_owner: bool) -> GrantEnded:
    grant_id = grant_id.strip()
    if not grant_id:
        raise BadRequest("grant_id is required")
    verb = "revoke" if as_owner else "leave"
    with transaction.atomic():
        grant = Grant.objects.filter(pk=grant_id).first()
        if grant is None:
            raise NotFound("grant not found")
        actor = grant.owner_uid if as_owner else grant.grantee_uid
        if not actor or actor != principal.uid:
            raise Forbidden("forbidden")
        if grant.status == Grant.REVOKED:
            return GrantEnded(grant.grant_id, grant.device_id, grant.grantee_uid, changed=False)
        allowed = (Grant.PENDING, Grant.ACTIVE) if as_owner else (Grant.ACTIVE,)
        if grant.status not in allowed:
            raise Conflict(f"cannot {verb} grant in {grant.status} state")
        now = _now()
        Grant.objects.filter(pk=grant.pk).update(
            status=Grant.REVOKED, revoked_at=now, revoked_by_uid=principal.uid, updated_at=now
        )
    if grant.grantee_uid:
        access.forget_access(grant.device_id, grant.grantee_uid)
    return GrantEnded(grant.grant_id, grant.device_id, grant.grantee_uid, changed=True)


def grant_revoke(*, principal: Principal, grant_id: str) -> GrantEnded:
    """§9.4: the grant's owner revokes a pending or active grant (decided on the stored status)."""
    return _end_grant(grant_id=grant_id, principal=principal, as_owner=True)


def grant_leave(*, principal: Principal, grant_id: str) -> GrantEnded:
    """§9.5: the grantee leaves an active grant; the result is the same `revoked` status."""
    return _end_grant(grant_id=grant_id, principal=principal, as_owner=False)


def grants_revoke_all_of_user(*, uid: str, revoked_by: str) -> list[GrantEnded]:
    """An operator revokes everything of `uid` (docs/operations.md): every pending or active grant the user gave, and
    every one the user holds, is revoked. Returns the grants that changed; the caller ends their grantees' access."""
    now = _now()
    with transaction.atomic():
        grants = list(
            Grant.objects.select_for_update()
            .filter(status__in=[Grant.PENDING, Grant.ACTIVE])
            .filter(Q(owner_uid=uid) | Q(grantee_uid=uid))
        )
        Grant.objects.filter(pk__in=[g.pk for g in grants]).update(
            status=Grant.REVOKED, revoked_at=now, revoked_by_uid=revoked_by, updated_at=now
        )
    for grant in grants:
        if grant.grantee_uid:
            access.forget_access(grant.device_id, grant.grantee_uid)
    return [GrantEnded(g.grant_id, g.device_id, g.grantee_uid, changed=True) for g in grants]


def health_counts(principal: Principal) -> dict[str, int]:
    """`grants` of `GET /gateway/v1/health`: every grant the caller owns, in any status."""
    return {"grants": Grant.objects.filter(owner_uid=principal.uid).count()}

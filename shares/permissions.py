"""Grants as the relay's access checks see them (docs/protocol/devices-and-shares.md §8.2, §10).

`relay.access` decides who may use a device; this module is its `GrantSource` (named in settings as
`GATEWAY_GRANT_SOURCE`): the grants that are effectively active right now. Grants are read at every call; the relay
alone keeps its short membership cache.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from django.db.models import Q

from relay.access import GrantView
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


def _active_grants(**filters: object) -> list[GrantView]:
    """Grants stored as active whose own expiry has not passed."""
    current = now()
    grants = Grant.objects.select_related("device").filter(status=Grant.ACTIVE, **filters)
    grants = grants.filter(Q(grant_expires_at__lte=0) | Q(grant_expires_at__gte=current))
    return [
        GrantView(g.grant_id, g.device, g.grantee_uid, g.grant_expires_at)
        for g in grants
        if effective_status(g, current) == Grant.ACTIVE
    ]


class ShareGrants:
    """The relay's `GrantSource` backed by `shares.Grant`."""

    def active_grant(self, device_id: str, uid: str) -> GrantView | None:
        found = _active_grants(device_id=device_id, grantee_uid=uid)
        return found[0] if found else None

    def active_grants_of_user(self, uid: str) -> Iterable[GrantView]:
        return _active_grants(grantee_uid=uid)

    def active_grants_of_device(self, device_id: str) -> Iterable[GrantView]:
        return _active_grants(device_id=device_id)

"""Grant history, revoke and leave (docs/protocol/devices-and-shares.md §8.2, §9.3-9.5)."""

from __future__ import annotations

import pytest

from shares.models import Grant
from tests.relay_helpers import auth, register, token_for
from tests.shares_helpers import BOB, DEVICE, EVE, OWNER, accept, invite, invite_token, shared_device

pytestmark = pytest.mark.django_db


def error(response):
    return response.status_code, response.json()


def history(client, token=OWNER, device_id=DEVICE):
    return client.get(f"/gateway/v1/shares/devices/{device_id}/grants", **auth(token))


def revoke(client, grant_id, token=OWNER):
    return client.post(
        f"/gateway/v1/shares/grants/{grant_id}/revoke", "", content_type="application/json", **auth(token)
    )


def leave(client, grant_id, token=BOB):
    return client.post(f"/gateway/v1/shares/grants/{grant_id}/leave", **auth(token))


def test_history_lists_every_grant_with_every_key(client, clock):
    grant_id = shared_device(client)
    invite(client, "carol@example.com")
    response = history(client)
    assert response.status_code == 200
    body = response.json()
    assert body["deviceId"] == DEVICE
    active, pending = body["grants"]
    assert active == {
        "grantId": grant_id,
        "granteeEmail": "bob@example.com",
        "granteeUid": "bob-2",
        "granteeDeviceId": "",
        "role": "collaborator",
        "status": "active",
        "grantExpiresAt": 0,
        "acceptedAt": clock.now,
        "createdAt": clock.now,
    }
    assert pending["granteeEmail"] == "carol@example.com" and pending["status"] == "pending"
    assert pending["granteeUid"] == "" and pending["acceptedAt"] == 0


def test_empty_history_is_an_empty_list(client):
    register(DEVICE, "owner-1")
    assert history(client).json() == {"deviceId": DEVICE, "grants": []}


def test_history_errors(client):
    register(DEVICE, "owner-1")
    assert error(history(client, device_id="x")) == (400, {"error": "invalid device_id"})
    assert error(history(client, device_id="dev_none")) == (404, {"error": "device not found"})
    assert error(history(client, token=BOB)) == (403, {"error": "you do not own this device"})


def test_history_shows_effective_status(client, clock):
    register(DEVICE, "owner-1", email="owner@example.com")
    invite(client, inviteTokenTtlSeconds=60)
    token = invite_token(invite(client, "carol@example.com"))
    accept(client, token, token=token_for("c-4", email="carol@example.com"))
    Grant.objects.filter(grantee_email="carol@example.com").update(grant_expires_at=clock.now + 30)
    clock.advance(61)
    statuses = {g["granteeEmail"]: g["status"] for g in history(client).json()["grants"]}
    assert statuses == {"bob@example.com": "expired", "carol@example.com": "expired"}


def test_negative_or_zero_grant_expiry_means_never(client, clock):
    grant_id = shared_device(client)
    Grant.objects.filter(pk=grant_id).update(grant_expires_at=-1)
    clock.advance(10**8)
    assert history(client).json()["grants"][0]["status"] == "active"


# Revoke (§9.4)


def test_owner_revokes_and_access_ends_at_once(client):
    grant_id = shared_device(client)
    assert client.get(f"/gateway/v1/devices/{DEVICE}/identity-key", **auth(BOB)).status_code == 200
    response = revoke(client, grant_id)
    assert (response.status_code, response.json()) == (200, {"grantId": grant_id, "status": "revoked"})
    grant = Grant.objects.get(pk=grant_id)
    assert grant.revoked_by_uid == "owner-1" and grant.revoked_at > 0
    assert client.get(f"/gateway/v1/devices/{DEVICE}/identity-key", **auth(BOB)).status_code == 403
    assert client.get("/gateway/v1/devices", **auth(BOB)).json() == {"devices": []}


def test_revoke_is_idempotent(client):
    grant_id = shared_device(client)
    revoke(client, grant_id)
    assert error(revoke(client, grant_id)) == (200, {"grantId": grant_id, "status": "revoked"})


def test_revoke_errors(client):
    grant_id = shared_device(client)
    assert error(revoke(client, "%20")) == (400, {"error": "grant_id is required"})
    assert error(revoke(client, "gr_unknown")) == (404, {"error": "grant not found"})
    assert error(revoke(client, grant_id, token=BOB)) == (403, {"error": "forbidden"})
    assert error(revoke(client, grant_id, token=EVE)) == (403, {"error": "forbidden"})


def test_stored_expired_grant_cannot_be_revoked(client, clock):
    register(DEVICE, "owner-1", email="owner@example.com")
    created = invite(client, inviteTokenTtlSeconds=60).json()
    clock.advance(61)
    accept(client, created["inviteUrl"].rsplit("/", 1)[1])  # stores "expired"
    assert error(revoke(client, created["grantId"])) == (409, {"error": "cannot revoke grant in expired state"})


def test_time_expired_but_stored_active_grant_can_be_revoked(client, clock):
    grant_id = shared_device(client)
    Grant.objects.filter(pk=grant_id).update(grant_expires_at=clock.now + 5)
    clock.advance(6)
    assert revoke(client, grant_id).status_code == 200


def test_pending_grant_can_be_revoked(client):
    register(DEVICE, "owner-1", email="owner@example.com")
    grant_id = invite(client).json()["grantId"]
    assert revoke(client, grant_id).status_code == 200


# Leave (§9.5)


def test_grantee_leaves(client):
    grant_id = shared_device(client)
    response = leave(client, grant_id)
    assert (response.status_code, response.json()) == (200, {"grantId": grant_id, "status": "revoked"})
    assert Grant.objects.get(pk=grant_id).revoked_by_uid == "bob-2"
    assert client.get("/gateway/v1/devices", **auth(BOB)).json() == {"devices": []}
    assert leave(client, grant_id).status_code == 200  # idempotent


def test_leave_errors(client):
    grant_id = shared_device(client)
    assert error(leave(client, "gr_unknown")) == (404, {"error": "grant not found"})
    assert error(leave(client, grant_id, token=OWNER)) == (403, {"error": "forbidden"})
    pending = invite(client, "carol@example.com").json()["grantId"]
    assert error(leave(client, pending)) == (403, {"error": "forbidden"})  # nobody is its grantee yet


def test_leave_of_a_stored_expired_grant_conflicts(client):
    grant_id = shared_device(client)
    Grant.objects.filter(pk=grant_id).update(status="expired")
    assert error(leave(client, grant_id)) == (409, {"error": "cannot leave grant in expired state"})


def test_health_counts_owned_grants_in_every_status(client):
    grant_id = shared_device(client)
    invite(client, "carol@example.com")
    revoke(client, grant_id)
    assert client.get("/gateway/v1/health", **auth(OWNER)).json()["grants"] == 2
    assert client.get("/gateway/v1/health", **auth(BOB)).json()["grants"] == 0

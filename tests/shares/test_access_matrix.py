"""Every row of the access matrix (docs/protocol/devices-and-shares.md §10) that exists so far, for owner, grantee and
stranger.

Session rows belong to the relay sessions."""

from __future__ import annotations

import pytest

from relay import services as relay_services
from tests.relay_helpers import KEY_B64, auth, put_key
from tests.shares_helpers import BOB, DEVICE, EVE, OWNER, invite, post_json, shared_device

pytestmark = pytest.mark.django_db


@pytest.fixture
def grant_id(client):
    return shared_device(client)


def test_put_identity_key(client, grant_id):
    assert put_key(client, OWNER, DEVICE).status_code == 204
    for token in (BOB, EVE):
        response = put_key(client, token, DEVICE)
        assert (response.status_code, response.json()) == (403, {"error": "you do not own this device"})
    assert put_key(client, EVE, "dev_eves_new").status_code == 204  # a new id creates a device for the caller


def test_get_identity_key(client, grant_id):
    for token in (OWNER, BOB):
        response = client.get(f"/gateway/v1/devices/{DEVICE}/identity-key", **auth(token))
        assert (response.status_code, response.json()["public_key"]) == (200, KEY_B64)
    response = client.get(f"/gateway/v1/devices/{DEVICE}/identity-key", **auth(EVE))
    assert (response.status_code, response.json()) == (403, {"error": "forbidden"})


def test_device_listing(client, grant_id):
    (owned,) = client.get("/gateway/v1/devices", **auth(OWNER)).json()["devices"]
    assert owned["role"] == "owner" and "grant_id" not in owned
    (shared,) = client.get("/gateway/v1/devices", **auth(BOB)).json()["devices"]
    assert shared["role"] == "collaborator" and shared["grant_id"] == grant_id
    assert shared["owner_uid"] == "owner-1" and shared["owner_email"] == "owner@example.com"
    assert client.get("/gateway/v1/devices", **auth(EVE)).json() == {"devices": []}


def test_owner_who_is_also_a_grantee_sees_the_device_once(client, grant_id):
    from shares.models import Grant

    Grant.objects.filter(pk=grant_id).update(grantee_uid="owner-1")
    devices = client.get("/gateway/v1/devices", **auth(OWNER)).json()["devices"]
    assert [(d["device_id"], d["role"]) for d in devices] == [(DEVICE, "owner")]


def test_invites_and_grant_history_are_owner_only(client, grant_id):
    assert invite(client, "carol@example.com").status_code == 201
    for token in (BOB, EVE):
        assert invite(client, "dan@example.com", token=token).json() == {"error": "you do not own this device"}
        response = client.get(f"/gateway/v1/shares/devices/{DEVICE}/grants", **auth(token))
        assert (response.status_code, response.json()) == (403, {"error": "you do not own this device"})


def test_revoke_is_for_the_grant_owner(client, grant_id):
    for token in (BOB, EVE):
        response = client.post(f"/gateway/v1/shares/grants/{grant_id}/revoke", **auth(token))
        assert (response.status_code, response.json()) == (403, {"error": "forbidden"})
    assert client.post(f"/gateway/v1/shares/grants/{grant_id}/revoke", **auth(OWNER)).status_code == 200


def test_leave_is_for_the_grantee(client, grant_id):
    for token in (OWNER, EVE):
        response = client.post(f"/gateway/v1/shares/grants/{grant_id}/leave", **auth(token))
        assert (response.status_code, response.json()) == (403, {"error": "forbidden"})
    assert client.post(f"/gateway/v1/shares/grants/{grant_id}/leave", **auth(BOB)).status_code == 200


def test_agent_socket_is_owner_only(client, grant_id):
    from gateway_site.auth import authenticate
    from gateway_site.errors import Forbidden

    assert relay_services.agent_admit(principal=authenticate(f"Bearer {OWNER}"), device_id=DEVICE, x_device_id=None)
    for token in (BOB, EVE):
        with pytest.raises(Forbidden):
            relay_services.agent_admit(principal=authenticate(f"Bearer {token}"), device_id=DEVICE, x_device_id=None)


def test_device_delete_is_owner_only(client, grant_id):
    response = client.delete(f"/gateway/v1/devices/{DEVICE}", **auth(BOB))
    assert (response.status_code, response.json()) == (403, {"error": "you do not own this device"})
    response = client.delete(f"/gateway/v1/devices/{DEVICE}", **auth(EVE))
    assert response.status_code == 404
    assert client.delete(f"/gateway/v1/devices/{DEVICE}", **auth(OWNER)).status_code == 204
    # The device's grants went with it.
    assert client.get("/gateway/v1/devices", **auth(BOB)).json() == {"devices": []}
    response = post_json(client, "/gateway/v1/shares/grants/" + grant_id + "/leave", "", BOB)
    assert response.status_code == 404

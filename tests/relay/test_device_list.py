"""`GET /gateway/v1/devices` (docs/protocol/devices-and-shares.md §6) and `DELETE /gateway/v1/devices/{id}`
(docs/protocol/decisions.md D1)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from asgiref.sync import async_to_sync

from relay.models import Device
from relay.stores import presence
from tests.relay_helpers import auth, register, token_for

pytestmark = pytest.mark.django_db
OWNER = token_for("owner-1", email="owner@example.com")


def listing(client, token=OWNER):
    response = client.get("/gateway/v1/devices", **auth(token))
    assert response.status_code == 200
    return response.json()["devices"]


def test_empty_listing(client):
    assert listing(client) == []


def test_offline_device_fields(client):
    device = register("dev_abc", "owner-1", email="owner@example.com", name="box")
    Device.objects.filter(pk=device.pk).update(updated_at=datetime(2026, 4, 12, 9, 12, 44, tzinfo=UTC))
    assert listing(client) == [
        {
            "device_id": "dev_abc",
            "display_name": "box",
            "name": "box",
            "owner_uid": "owner-1",
            "owner_email": "owner@example.com",
            "algorithm": "ed25519",
            "status": "offline",
            "connected": False,
            "updated_at": "2026-04-12T09:12:44Z",
            "device_class": "agent",
            "role": "owner",
        }
    ]


def test_online_device_has_presence_times_and_no_email_key_when_empty(client):
    register("dev_abc", "owner-1", key="")
    async_to_sync(presence.mark_online)("dev_abc", "agt:1", "node", now=int(datetime.now(tz=UTC).timestamp()))
    (item,) = listing(client)
    assert item["status"] == "online" and item["connected"] is True
    assert item["connected_at"].endswith("Z") and item["last_seen_at"].endswith("Z")
    assert "owner_email" not in item
    assert item["display_name"] == item["name"] == "dev_abc"  # no name: the id
    assert item["algorithm"] == "ed25519"  # even without a key


def test_expired_presence_is_offline(client):
    register("dev_abc", "owner-1")
    async_to_sync(presence.mark_online)("dev_abc", "agt:1", "node", now=int(datetime.now(tz=UTC).timestamp()) - 61)
    (item,) = listing(client)
    assert item["status"] == "offline" and "connected_at" not in item


def test_sort_order(client):
    for device_id, day in [("dev_b", 1), ("dev_a", 1), ("dev_new", 5), ("dev_online", 2)]:
        register(device_id, "owner-1")
        Device.objects.filter(device_id=device_id).update(updated_at=datetime(2026, 1, day, tzinfo=UTC))
    async_to_sync(presence.mark_online)("dev_online", "agt:1", "node")
    assert [d["device_id"] for d in listing(client)] == ["dev_online", "dev_new", "dev_a", "dev_b"]


def test_only_own_devices_are_listed(client):
    register("dev_mine", "owner-1")
    register("dev_theirs", "other-2", email="owner@example.com")
    assert [d["device_id"] for d in listing(client)] == ["dev_mine"]


def test_listing_needs_a_token(client):
    assert client.get("/gateway/v1/devices").status_code == 401


def test_health_counts_own_devices(client):
    register("dev_1", "owner-1")
    register("dev_2", "owner-1")
    register("dev_3", "other-2")
    body = client.get("/gateway/v1/health", **auth(OWNER)).json()
    assert body["devices"] == 2 and body["agents"] == 0


# DELETE (D1)


def test_owner_deletes_a_device(client):
    register("dev_abc", "owner-1")
    async_to_sync(presence.mark_online)("dev_abc", "agt:1", "node")
    response = client.delete("/gateway/v1/devices/dev_abc", **auth(OWNER))
    assert response.status_code == 204 and response.content == b""
    assert not Device.objects.filter(device_id="dev_abc").exists()
    assert async_to_sync(presence.get)("dev_abc") is None


def test_delete_unknown_or_foreign_device_is_404(client):
    register("dev_theirs", "other-2")
    for device_id in ("dev_none", "dev_theirs"):
        response = client.delete(f"/gateway/v1/devices/{device_id}", **auth(OWNER))
        assert (response.status_code, response.json()) == (404, {"error": "device not found"})
    assert Device.objects.filter(device_id="dev_theirs").exists()


def test_delete_validates_the_id(client):
    response = client.delete("/gateway/v1/devices/x", **auth(OWNER))
    assert (response.status_code, response.json()) == (400, {"error": "invalid device_id"})

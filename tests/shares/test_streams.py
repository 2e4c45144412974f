"""Sharing takes effect at once in live device events streams (docs/protocol/devices-and-shares.md §12,
docs/protocol/decisions.md R4)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from gateway_site.asgi import application
from relay.groups import user_group
from shares.models import Grant
from tests.relay_helpers import Stream, auth, register
from tests.shares_helpers import BOB, DEVICE, OWNER, accept, invite, invite_token, shared_device

pytestmark = pytest.mark.django_db(transaction=True)
PATH = "/gateway/v1/devices/events"


def events(raw: bytes) -> list[dict]:
    return [json.loads(b.split("data: ", 1)[1]) for b in raw.decode().split("\n\n") if b.startswith("event: ")]


async def test_revoke_removes_the_device_from_the_grantees_stream_at_once(client):
    grant_id = await sync_to_async(shared_device)(client)
    stream = Stream(application, PATH, BOB)
    await stream.open()
    first = events(await stream.read_until(b"}\n\n"))
    assert first == [{"at": "", "deviceId": DEVICE, "status": "offline"}]
    response = await sync_to_async(client.post)(f"/gateway/v1/shares/grants/{grant_id}/revoke", **auth(OWNER))
    assert response.status_code == 200
    (dropped,) = events(await stream.read_until(b"}\n\n", timeout=2))
    assert dropped["deviceId"] == DEVICE and dropped["status"] == "offline" and dropped["at"].endswith("Z")
    await stream.close()


async def test_revoke_is_announced_on_the_channel_layer(client):
    grant_id = await sync_to_async(shared_device)(client)
    layer = get_channel_layer()
    assert layer is not None
    channel = await layer.new_channel()
    await layer.group_add(user_group("bob-2"), channel)
    await sync_to_async(client.post)(f"/gateway/v1/shares/grants/{grant_id}/leave", **auth(BOB))
    message = await layer.receive(channel)
    assert message == {"type": "shares.access_ended", "device_id": DEVICE, "reason": "grant_left"}


async def test_accept_shows_the_device_at_once(client):
    await sync_to_async(register)(DEVICE, "owner-1", email="owner@example.com")
    token = invite_token(await sync_to_async(invite)(client))
    stream = Stream(application, PATH, BOB)
    await stream.open()
    await stream.read_until(b":connected\n\n")
    assert (await sync_to_async(accept)(client, token)).status_code == 200
    assert events(await stream.read_until(b"}\n\n", timeout=2)) == [{"at": "", "deviceId": DEVICE, "status": "offline"}]
    await stream.close()


async def test_grant_expiry_removes_the_device_without_any_event(client):
    grant_id = await sync_to_async(shared_device)(client)
    await sync_to_async(Grant.objects.filter(pk=grant_id).update)(grant_expires_at=int(time.time()) + 1)
    stream = Stream(application, PATH, BOB)
    await stream.open()
    await stream.read_until(b"}\n\n")
    (dropped,) = events(await stream.read_until(b"}\n\n", timeout=10))  # well before the 30 s tick
    assert dropped["deviceId"] == DEVICE and dropped["status"] == "offline" and dropped["at"]
    await stream.close()


async def test_a_grant_expiring_in_the_current_second_is_dropped_at_its_end(client):
    """A grant is active through the second of its expiry: a stream opened during that second shows the device and
    must still drop it when the second ends, not at the next 30 s tick."""
    grant_id = await sync_to_async(shared_device)(client)
    deadline = time.monotonic() + 2
    while time.time() % 1 > 0.3:  # start early in a second, so the stream opens within it (bounded wait)
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    expires_at = int(time.time())
    await sync_to_async(Grant.objects.filter(pk=grant_id).update)(grant_expires_at=expires_at)
    stream = Stream(application, PATH, BOB)
    await stream.open()
    (shown,) = events(await stream.read_until(b"}\n\n"))
    assert shown["deviceId"] == DEVICE and int(time.time()) == expires_at  # still within the grant's last second
    (dropped,) = events(await stream.read_until(b"}\n\n", timeout=5))
    assert dropped["deviceId"] == DEVICE and dropped["status"] == "offline"
    await stream.close()


async def test_grantee_sees_presence_changes(client):
    from tests.relay_helpers import AgentSocket, token_for

    await sync_to_async(shared_device)(client)
    stream = Stream(application, PATH, BOB)
    await stream.open()
    await stream.read_until(b"}\n\n")
    agent = AgentSocket(application, token_for("owner-1", email="owner@example.com"), DEVICE)
    await agent.open()
    (online,) = events(await stream.read_until(b"}\n\n"))
    assert online["status"] == "online"
    await agent.close()
    (offline,) = events(await stream.read_until(b"}\n\n"))
    assert offline == {"at": "", "deviceId": DEVICE, "status": "offline"}
    await stream.close()

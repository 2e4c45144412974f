"""Sharing against a live Daphne server: the grantee's open device stream loses the device the moment the owner
revokes (docs/protocol/devices-and-shares.md §12)."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from tests.helpers import daphne_server
from tests.oauth_helpers import live_sign_in
from tests.relay_helpers import KEY_B64

DEVICE = "dev_live_shared_0001"


@pytest.fixture(scope="module")
def gateway():
    with daphne_server() as server:
        yield server


async def sign_in(http: httpx.AsyncClient, email: str, scope: str = "profile email") -> dict[str, str]:
    return {"Authorization": f"Bearer {await live_sign_in(http, email, scope)}"}


async def test_revocation_cuts_the_grantees_device_stream(gateway):
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        owner = await sign_in(http, "owner@example.com", "profile email device")
        bob = await sign_in(http, "bob@example.com")
        assert (
            await http.put(f"/gateway/v1/devices/{DEVICE}/identity-key", json={"public_key": KEY_B64}, headers=owner)
        ).status_code == 204
        created = await http.post(
            "/gateway/v1/shares/invites", json={"deviceId": DEVICE, "email": "bob@example.com"}, headers=owner
        )
        assert created.status_code == 201
        invite_url = created.json()["inviteUrl"]
        assert invite_url.startswith("http://localhost:8080/share/")
        token = invite_url.rsplit("/", 1)[1]
        page = await http.get(f"/share/{token}")
        assert page.status_code == 200 and "owner@example.com" in page.text
        accepted = await http.post("/gateway/v1/shares/invites/accept", json={"token": token}, headers=bob)
        assert accepted.status_code == 200
        grant_id = accepted.json()["grantId"]

        events: asyncio.Queue = asyncio.Queue()

        async def read(response: httpx.Response) -> None:
            buffer = ""
            async for text in response.aiter_text():
                buffer += text
                while "\n\n" in buffer:
                    block, buffer = buffer.split("\n\n", 1)
                    if block.startswith("event: device.status"):
                        await events.put(json.loads(block.split("data: ", 1)[1]))

        async with http.stream("GET", "/gateway/v1/devices/events", headers=bob) as stream:
            reader = asyncio.ensure_future(read(stream))
            try:
                snapshot = await asyncio.wait_for(events.get(), timeout=10)
                assert snapshot == {"at": "", "deviceId": DEVICE, "status": "offline"}
                started = time.monotonic()
                revoked = await http.post(f"/gateway/v1/shares/grants/{grant_id}/revoke", headers=owner)
                assert revoked.json() == {"grantId": grant_id, "status": "revoked"}
                dropped = await asyncio.wait_for(events.get(), timeout=5)
                assert time.monotonic() - started < 5  # not the 30 s tick
                assert dropped["deviceId"] == DEVICE and dropped["status"] == "offline" and dropped["at"]
            finally:
                reader.cancel()
        assert (await http.get("/gateway/v1/devices", headers=bob)).json() == {"devices": []}
        identity = await http.get(f"/gateway/v1/devices/{DEVICE}/identity-key", headers=bob)
        assert (identity.status_code, identity.json()) == (403, {"error": "forbidden"})

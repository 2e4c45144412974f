"""An agent's life against a live Daphne server, as the public agent client lives it (docs/protocol/relay.md §7.1):
sign in through OAuth, register an Ed25519 identity key, connect, hello, heartbeat, get replaced by a reconnect,
while a device events stream watches it go online and offline."""

from __future__ import annotations

import asyncio
import base64
import json

import httpx
import pytest
import websockets
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.helpers import daphne_server
from tests.oauth_helpers import live_sign_in

DEVICE = "dev_00112233445566778899aabbccddeeff"


@pytest.fixture(scope="module")
def gateway():
    with daphne_server() as server:
        yield server


async def sign_in(http: httpx.AsyncClient) -> str:
    return await live_sign_in(
        http, "agent@example.com", "read_assets write_assets offline_access device", "http://localhost:53817/callback"
    )


async def read_events(response: httpx.Response, sink: asyncio.Queue) -> None:
    buffer = ""
    async for text in response.aiter_text():
        buffer += text
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            if block.startswith("event: device.status"):
                await sink.put(json.loads(block.split("data: ", 1)[1]))


async def next_status(sink: asyncio.Queue) -> str:
    event = await asyncio.wait_for(sink.get(), timeout=10)
    assert event["deviceId"] == DEVICE
    return event["status"]


async def test_agent_lifecycle(gateway):
    ws_url = f"ws://127.0.0.1:{gateway.port}/gateway/v1/agent/connect?device_id={DEVICE}"
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        token = await sign_in(http)
        bearer = {"Authorization": f"Bearer {token}"}
        identity = Ed25519PrivateKey.generate().public_key()
        raw_key = identity.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        registered = await http.put(
            f"/gateway/v1/devices/{DEVICE}/identity-key",
            json={"algorithm": "ed25519", "public_key": base64.b64encode(raw_key).decode(), "display_name": "e2e-box"},
            headers=bearer,
        )
        assert registered.status_code == 204

        sink: asyncio.Queue = asyncio.Queue()
        async with http.stream(
            "GET", "/gateway/v1/devices/events", headers={**bearer, "Accept": "text/event-stream"}
        ) as stream:
            reader = asyncio.ensure_future(read_events(stream, sink))
            try:
                assert await next_status(sink) == "offline"  # the snapshot

                headers = {**bearer, "X-Device-Id": DEVICE}
                first = await websockets.connect(ws_url, additional_headers=headers)
                greeting = [json.loads(await first.recv()) for _ in range(2)]
                assert [f["type"] for f in greeting] == ["gateway.connected", "transport.init"]
                await first.send(json.dumps({"type": "agent.hello", "device_id": DEVICE, "agent_version": "0.1.0"}))
                await first.send(
                    json.dumps({"type": "heartbeat", "device_id": DEVICE, "at": "2026-04-12T10:00:15.123Z"})
                )
                # The public agent answers the gateway's greeting frames with agent.error; the socket stays up.
                await first.send(
                    json.dumps({"type": "agent.error", "error": "unsupported_type", "received_type": "transport.init"})
                )
                await first.send(json.dumps({"type": "ping"}))
                assert json.loads(await first.recv())["type"] == "heartbeat"
                assert await next_status(sink) == "online"

                listing = (await http.get("/gateway/v1/devices", headers=bearer)).json()["devices"]
                assert listing[0]["status"] == "online" and listing[0]["display_name"] == "e2e-box"

                second = await websockets.connect(ws_url, additional_headers=headers)  # the agent reconnects
                with pytest.raises(websockets.ConnectionClosedOK) as closed:
                    while True:
                        await asyncio.wait_for(first.recv(), timeout=10)
                assert closed.value.rcvd is not None
                assert closed.value.rcvd.code == 1000
                assert [json.loads(await second.recv())["type"] for _ in range(2)] == [
                    "gateway.connected",
                    "transport.init",
                ]
                await second.send(json.dumps({"type": "ping"}))
                assert json.loads(await second.recv())["type"] == "heartbeat"
                listing = (await http.get("/gateway/v1/devices", headers=bearer)).json()["devices"]
                assert listing[0]["status"] == "online"  # the replaced socket did not take it offline

                await second.close()
                assert await next_status(sink) == "offline"
                assert sink.empty()
            finally:
                reader.cancel()

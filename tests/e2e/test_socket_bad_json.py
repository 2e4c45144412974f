"""docs/protocol/decisions.md H9 against real server processes: JSON nested 100,000 deep (or not JSON at all) on the
agent and tunnel sockets is answered with an `invalid_json` frame; the socket stays open and the device online."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
import websockets

from tests.e2ee import AgentSide
from tests.helpers import procfile_server, uvicorn_server
from tests.oauth_helpers import live_sign_in

DEEP_ARRAY = "[" * 100_000 + "]" * 100_000
DEEP_OBJECT = '{"a":' * 100_000 + "1" + "}" * 100_000
NOT_JSON: list[str | bytes] = [DEEP_ARRAY, DEEP_OBJECT, b"\xff\xfe\x00", "{", '"just a string"']


async def recv_json(ws, timeout: float = 10) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


@pytest.mark.parametrize("serve", [procfile_server, uvicorn_server], ids=["procfile-daphne", "uvicorn"])
async def test_bad_json_on_both_sockets_is_an_error_frame_and_nothing_breaks(serve):
    device = "dev_badjson_" + uuid.uuid4().hex[:12]
    with serve() as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            owner = {"Authorization": f"Bearer {await live_sign_in(http, 'owner@example.com', 'device')}"}
            key = {"algorithm": "ed25519", "public_key": AgentSide.new().identity_b64}
            put = await http.put(f"/gateway/v1/devices/{device}/identity-key", json=key, headers=owner)
            assert put.status_code == 204

            # HTTP first: the documented 400, and the server keeps serving.
            deep_http = await http.post(
                "/gateway/v1/shares/invites", content=DEEP_ARRAY, headers={**owner, "Content-Type": "application/json"}
            )
            assert (deep_http.status_code, deep_http.json()) == (400, {"error": "invalid json body"})

            base = f"ws://127.0.0.1:{server.port}/gateway/v1"
            agent = await websockets.connect(f"{base}/agent/connect?device_id={device}", additional_headers=owner)
            assert [(await recv_json(agent))["type"] for _ in range(2)] == ["gateway.connected", "transport.init"]
            for bad in NOT_JSON:
                await agent.send(bad)
                assert await recv_json(agent) == {"type": "agent.error", "error": "invalid_json"}
            await agent.send(json.dumps({"type": "ping"}))
            assert (await recv_json(agent))["type"] == "heartbeat"  # the socket survived all of it
            listing = (await http.get("/gateway/v1/devices", headers=owner)).json()["devices"]
            assert [(d["device_id"], d["status"]) for d in listing] == [(device, "online")]

            tunnel = await websockets.connect(
                f"{base}/integrations/tunnel/connect?device_id={device}", additional_headers=owner
            )
            assert (await recv_json(tunnel))["type"] == "tunnel.connected"
            for bad in NOT_JSON:
                await tunnel.send(bad)
                assert await recv_json(tunnel) == {"type": "tunnel.error", "error": "invalid_json"}
            created = await http.post(
                "/gateway/v1/integrations/routes", json={"device_id": device, "interface_type": "http"}, headers=owner
            )
            assert created.status_code == 201, created.text
            route_id = created.json()["route"]["route_id"]
            await tunnel.send(json.dumps({"type": "tunnel.activate", "request_id": "a1", "routes": [route_id]}))
            result = await recv_json(tunnel)
            assert [r["status"] for r in result["results"]] == ["active"]  # the tunnel survived too

            await tunnel.close()
            await agent.close()
            assert "Traceback" not in server.log()

"""Webhook tunneling against a live Daphne server (docs/protocol/tunnels.md): a tunnel client answers real HTTP
webhooks."""

from __future__ import annotations

import asyncio
import base64
import json

import httpx
import pytest
import websockets

from gateway_site.ratelimit import seconds_left
from tests.helpers import daphne_server

DEVICE = "dev_webhook_live_01"


@pytest.fixture(scope="module")
def gateway():
    with daphne_server(INGRESS_ROUTE_LIMIT_PER_WINDOW="8", INGRESS_RATE_WINDOW_SECONDS="120") as server:
        yield server


async def tunnel_client(ws, seen: list, delays: dict[str, float]) -> None:
    """Echo webhooks: status 201, the request's method and headers back, the body unchanged."""
    async for text in ws:
        frame = json.loads(text)
        if frame.get("type") != "tunnel.request":
            continue
        seen.append(frame)
        await asyncio.sleep(delays.get(frame["route_id"], 0))
        headers = {name.lower(): value for name, value in frame["headers"]}
        answer = {
            "type": "tunnel.response",
            "request_id": frame["request_id"],
            "status": 201,
            "headers": [
                ["Content-Type", "application/octet-stream"],
                ["X-Echo-Method", frame["method"]],
                ["X-Echo-Signature", headers.get("x-signature", "")],
            ],
            "body_base64": frame["body_base64"],
        }
        await ws.send(json.dumps(answer))


async def test_webhooks_through_a_tunnel(gateway):
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=15) as http:
        token = (
            await http.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "webhook-bot"})
        ).json()["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}

        async def route(**body) -> dict:
            response = await http.post(
                "/gateway/v1/integrations/routes",
                json={"device_id": DEVICE, "interface_type": "http", **body},
                headers=bearer,
            )
            assert response.status_code == 201, response.text
            created = response.json()
            created["path"] = created["public_url"].removeprefix("http://localhost:8080")
            return created

        echo, slow, limited = await route(), await route(deadline_ms=500), await route()
        assert (await http.post(echo["path"], content=b"x")).status_code == 503  # no tunnel yet

        ws = await websockets.connect(
            f"ws://127.0.0.1:{gateway.port}/gateway/v1/integrations/tunnel/connect?device_id={DEVICE}",
            additional_headers=bearer,
        )
        assert json.loads(await ws.recv())["type"] == "tunnel.connected"
        ids = [echo["route"]["route_id"], slow["route"]["route_id"], limited["route"]["route_id"]]
        await ws.send(json.dumps({"type": "tunnel.activate", "request_id": "act-1", "routes": ids}))
        result = json.loads(await ws.recv())
        assert [r["status"] for r in result["results"]] == ["active"] * 3
        seen: list = []
        client = asyncio.ensure_future(tunnel_client(ws, seen, {slow["route"]["route_id"]: 2.0}))
        try:
            got = await http.get(echo["path"], params={"challenge": "abc"})
            assert (got.status_code, got.headers["x-echo-method"], got.content) == (201, "GET", b"")
            assert seen[-1]["query"] == "challenge=abc"

            payload = bytes(range(256)) * 4
            posted = await http.post(
                echo["path"],
                content=payload,
                headers={"X-Signature": "v0=abc", "Content-Type": "application/octet-stream"},
            )
            assert (posted.status_code, posted.content) == (201, payload)
            assert (
                posted.headers["x-echo-signature"] == "v0=abc"
                and posted.headers["content-type"] == "application/octet-stream"
            )
            arrived = seen[-1]
            assert base64.b64decode(arrived["body_base64"]) == payload and arrived["method"] == "POST"
            assert ["X-Signature", "v0=abc"] in arrived["headers"]

            timed_out = await http.post(slow["path"], content=b"slow")
            assert (timed_out.status_code, timed_out.text) == (504, "Gateway Timeout")

            rotated = (
                await http.post(
                    f"/gateway/v1/integrations/routes/{echo['route']['route_id']}/rotate-token",
                    json={"grace_seconds": 0},
                    headers=bearer,
                )
            ).json()
            assert (await http.post(echo["path"], content=b"old")).status_code == 404
            fresh = await http.post(rotated["public_url"].removeprefix("http://localhost:8080"), content=b"new")
            assert (fresh.status_code, fresh.content) == (201, b"new")

            while seconds_left(120) < 10:  # the burst below must fall in one epoch-aligned window
                await asyncio.sleep(0.1)
            statuses = [(await http.post(limited["path"], content=b"n")).status_code for _ in range(9)]
            assert statuses == [201] * 8 + [429]
            refused = await http.post(limited["path"], content=b"n")
            assert (refused.status_code, refused.text) == (429, "Too Many Requests")
            assert 1 <= int(refused.headers["retry-after"]) <= 120  # the time left in the window
        finally:
            client.cancel()
            await ws.close()
        assert (await http.post(fresh.request.url.path, content=b"gone")).status_code == 503  # tunnel closed

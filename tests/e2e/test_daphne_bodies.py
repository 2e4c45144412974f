"""Request bodies under the production command (Daphne, Procfile), which the gateway reads lazily from Daphne's content
file (gateway_site.daphne_compat): webhooks of every size up to 4 MiB arrive intact, byte for byte (the Procfile's
WebSocket limit carries them to the tunnel), and a body nobody reads is simply answered."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os

import httpx
import websockets

from tests.helpers import procfile_server

DEVICE = "dev_daphne_bodies_1"


async def digests(ws) -> None:
    """A tunnel client that answers each webhook with the SHA-256 of the body it received (answers stay small:
    Daphne takes WebSocket messages of at most 1 MiB)."""
    async for text in ws:
        frame = json.loads(text)
        if frame.get("type") == "tunnel.request":
            digest = hashlib.sha256(base64.b64decode(frame["body_base64"])).hexdigest().encode()
            answer = {
                "request_id": frame["request_id"],
                "status": 201,
                "body_base64": base64.b64encode(digest).decode(),
            }
            await ws.send(json.dumps({"type": "tunnel.response", **answer}))


async def test_bodies_of_every_size_reach_the_tunnel_intact():
    with procfile_server() as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            token = (
                await http.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "bodies"})
            ).json()["access_token"]
            bearer = {"Authorization": f"Bearer {token}"}
            created = (
                await http.post(
                    "/gateway/v1/integrations/routes",
                    json={"device_id": DEVICE, "interface_type": "http", "max_body_bytes": 5 * 1024 * 1024},
                    headers=bearer,
                )
            ).json()
            path = created["public_url"].removeprefix("http://localhost:8080")
            ws = await websockets.connect(
                f"ws://127.0.0.1:{server.port}/gateway/v1/integrations/tunnel/connect?device_id={DEVICE}",
                additional_headers=bearer,
                max_size=None,
            )
            await ws.recv()
            await ws.send(json.dumps({"type": "tunnel.activate", "routes": [created["route"]["route_id"]]}))
            await ws.recv()
            client = asyncio.ensure_future(digests(ws))
            try:
                for size in (0, 1, 8191, 8192, 8193, 99_999, 100_001, 4 * 1024 * 1024 + 7):
                    payload = os.urandom(size)
                    answer = await http.post(path, content=payload)
                    assert (answer.status_code, answer.text) == (201, hashlib.sha256(payload).hexdigest()), size
                # Form bodies are not parsed by Twisted: a url-encoded one and a multipart one that would not parse
                # reach the tunnel byte for byte (Twisted would answer the latter with its own 400).
                forms = (
                    ("application/x-www-form-urlencoded", b"token=abc&text=%2Fdeploy+now&a=1&a=2"),
                    ("multipart/form-data", b"--xyz\r\nContent-Disposition: broken\r\n\r\nno end"),  # no boundary
                )
                for content_type, payload in forms:
                    answer = await http.post(path, content=payload, headers={"Content-Type": content_type})
                    assert (answer.status_code, answer.text) == (201, hashlib.sha256(payload).hexdigest()), content_type
                unknown = await http.post(f"/integrations/rt_{'a' * 32}/token", content=os.urandom(3 * 1024 * 1024))
                assert unknown.status_code == 404
                json_api = await http.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "x"})
                assert json_api.status_code == 200  # form bodies of Django views are read through the same queue
            finally:
                client.cancel()
                await ws.close()

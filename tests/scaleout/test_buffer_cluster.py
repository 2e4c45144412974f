"""Offline buffering with STATE_BACKEND=redis (docs/protocol/webhooks.md §3, docs/scaling.md): webhooks buffered
through process B are delivered, once each and in order, when the tunnel activates the route on process A; the records
(shared in Redis too) end `delivered` whichever process is asked."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from urllib.parse import urlsplit

import httpx
import websockets

from tests.operator_helpers import LiveUser


async def test_buffered_on_one_process_delivered_through_the_other(cluster):
    async with (
        httpx.AsyncClient(base_url=cluster.url(0), timeout=20) as a,
        httpx.AsyncClient(base_url=cluster.url(1), timeout=20) as b,
    ):
        user = await LiveUser(a, cluster.url(0), "buffer@example.com", "dev_buffer_clu01").start(route=False)
        created = await a.post(
            "/gateway/v1/integrations/routes",
            json={"device_id": user.device_id, "interface_type": "http", "buffer": {"enabled": True}},
            headers=user.headers,
        )
        assert created.status_code == 201, created.text
        route_id = created.json()["route"]["route_id"]
        path = urlsplit(created.json()["public_url"]).path
        ids = []
        for n in range(4):
            response = await (b if n % 2 == 0 else a).post(path, content=f"m{n}".encode())
            assert response.status_code == 202, response.text
            ids.append(response.json()["request_id"])
        listed = await a.get(f"/gateway/v1/integrations/routes/{route_id}/requests", headers=user.headers)
        assert [r["delivery"] for r in listed.json()["requests"]] == ["buffered"] * 4

        ws_url = f"{user.ws_base}/gateway/v1/integrations/tunnel/connect?device_id={user.device_id}"
        tunnel = await websockets.connect(ws_url, additional_headers=user.headers)
        try:
            assert json.loads(await tunnel.recv())["type"] == "tunnel.connected"
            await tunnel.send(json.dumps({"type": "tunnel.activate", "routes": [route_id]}))
            assert json.loads(await tunnel.recv())["results"][0]["status"] == "active"
            received: list[bytes] = []
            # Webhooks sent through B while A drains queue behind the stored ones; B's own drain attempt finds
            # the route's lock taken, so nothing is sent twice.
            late = await b.post(path, content=b"late")
            assert late.status_code == 202
            while len(received) < 5:
                frame = json.loads(await asyncio.wait_for(tunnel.recv(), timeout=10))
                assert frame["type"] == "tunnel.request"
                received.append(base64.b64decode(frame["body_base64"]))
                answer = {"type": "tunnel.response", "request_id": frame["request_id"], "status": 200}
                await tunnel.send(json.dumps({**answer, "body_base64": base64.b64encode(b"ok").decode()}))
            assert received == [b"m0", b"m1", b"m2", b"m3", b"late"]
            deadline = time.monotonic() + 10
            while True:
                found = (
                    await b.get(f"/gateway/v1/integrations/routes/{route_id}/requests", headers=user.headers)
                ).json()["requests"]
                if all(r["delivery"] == "delivered" for r in found) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            assert [(r["delivery"], r["status"]) for r in found] == [("delivered", 200)] * 5
            assert {r["request_id"] for r in found} >= set(ids)
            # Drained: the next webhook is live again, through B to A's tunnel.
            sent = asyncio.ensure_future(b.post(path, content=b"direct"))
            frame = json.loads(await asyncio.wait_for(tunnel.recv(), timeout=10))
            assert base64.b64decode(frame["body_base64"]) == b"direct"
            await tunnel.send(json.dumps({"type": "tunnel.response", "request_id": frame["request_id"], "status": 204}))
            assert (await sent).status_code == 204
        finally:
            await tunnel.close()
            await user.stop()

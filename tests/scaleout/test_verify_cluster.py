"""Signature verification with STATE_BACKEND=redis (docs/protocol/webhooks.md §1, docs/scaling.md): the tunnel is on
process A, webhooks arrive at process B; the route snapshot the processes share in Redis carries the sealed secret
only, so the plaintext secret is in no Redis value."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import redis
import websockets

from tests.operator_helpers import LiveUser

SECRET = "whsec_cluster_secret_value"


def stripe_headers(body: bytes, secret: str = SECRET, at: int | None = None) -> dict[str, str]:
    stamp = int(time.time()) if at is None else at
    signature = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={stamp},v1={signature}"}


def redis_values(url: str) -> list[bytes]:
    """Every value in the cluster's Redis database, whatever its type (a composite one as its repr)."""
    client = redis.Redis.from_url(url)
    readers: dict[Any, Any] = {
        b"string": client.get,
        b"hash": client.hgetall,
        b"list": lambda key: client.lrange(key, 0, -1),
        b"set": client.smembers,
        b"zset": lambda key: client.zrange(key, 0, -1),
        b"stream": client.xrange,
    }
    values: list[bytes] = []
    try:
        for key in client.scan_iter(count=500):
            value = readers[client.type(key)](key)
            values.append(value if isinstance(value, bytes) else repr(value).encode())
    finally:
        client.close()
    return values


async def test_verified_webhooks_across_processes(cluster):
    async with (
        httpx.AsyncClient(base_url=cluster.url(0), timeout=20) as a,
        httpx.AsyncClient(base_url=cluster.url(1), timeout=20) as b,
    ):
        user = await LiveUser(a, cluster.url(0), "verify@example.com", "dev_verify_clu01").start(route=False)
        created = await a.post(
            "/gateway/v1/integrations/routes",
            json={
                "device_id": user.device_id,
                "interface_type": "stripe",
                "verify": {"provider": "stripe", "secret": SECRET},
            },
            headers=user.headers,
        )
        assert created.status_code == 201, created.text
        route_id = created.json()["route"]["route_id"]
        path = urlsplit(created.json()["public_url"]).path
        ws_url = f"{user.ws_base}/gateway/v1/integrations/tunnel/connect?device_id={user.device_id}"
        tunnel = await websockets.connect(ws_url, additional_headers=user.headers)
        received: list[bytes] = []

        async def serve() -> None:
            async for text in tunnel:
                frame = json.loads(text)
                if frame.get("type") == "tunnel.request":
                    received.append(base64.b64decode(frame["body_base64"]))
                    answer = {"type": "tunnel.response", "request_id": frame["request_id"], "status": 200}
                    await tunnel.send(json.dumps({**answer, "body_base64": base64.b64encode(b"ok").decode()}))

        server = None
        try:
            assert json.loads(await tunnel.recv())["type"] == "tunnel.connected"
            await tunnel.send(json.dumps({"type": "tunnel.activate", "routes": [route_id]}))
            assert json.loads(await tunnel.recv())["results"][0]["status"] == "active"
            server = asyncio.ensure_future(serve())
            body = b'{"type":"invoice.paid"}'
            assert (await b.post(path, content=body, headers=stripe_headers(body))).status_code == 200
            stale = stripe_headers(body, at=int(time.time()) - 400)
            assert (await b.post(path, content=body, headers=stale)).text == "invalid signature"
            wrong = stripe_headers(body, secret="whsec_someone_else")
            assert (await a.post(path, content=body, headers=wrong)).status_code == 401
            assert received == [body]
            values = redis_values(cluster.env["REDIS_URL"])
            # The shared snapshot holds the sealed secret (`v1:` + base64), not the plaintext.
            assert any(route_id.encode() in value and b'"sealed": "v1:' in value for value in values)
            assert not any(SECRET.encode() in value for value in values)

            # Turned off on B, at once on both processes.
            off = await b.put(
                f"/gateway/v1/integrations/routes/{route_id}", json={"verify": None}, headers=user.headers
            )
            assert off.status_code == 200 and off.json()["route"]["verify"] is None
            assert (await a.post(path, content=b"plain")).status_code == 200
            assert received == [body, b"plain"]
        finally:
            if server is not None:
                server.cancel()
                await asyncio.gather(server, return_exceptions=True)
            await tunnel.close()
            await user.stop()

"""Signature verification end to end on Daphne with a real tunnel client (docs/protocol/webhooks.md §1): a genuine
GitHub webhook reaches the tunnel, a forged one is answered 401 and never forwarded, the secret shows in no API answer,
in no log line and not in the database row."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import sqlite3
from urllib.parse import urlsplit

import httpx
import websockets

from tests.helpers import clean_env, daphne_server, run_manage
from tests.operator_helpers import LiveUser

SECRET = "It's a Secret to Everybody"
PAYLOAD = b"Hello, World!"
# GitHub's documented example for this secret and payload (docs.github.com, "Validating webhook deliveries").
GITHUB_EXAMPLE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


async def tunnel_client(ws, received: list[bytes]) -> None:
    """Answer every webhook 200 `got it`, keeping the bodies it was given."""
    async for text in ws:
        frame = json.loads(text)
        if frame.get("type") == "tunnel.request":
            received.append(base64.b64decode(frame["body_base64"]))
            body = base64.b64encode(b"got it").decode()
            answer = {"type": "tunnel.response", "request_id": frame["request_id"], "status": 200, "body_base64": body}
            await ws.send(json.dumps(answer))


async def test_github_webhooks_on_daphne(tmp_path):
    database = tmp_path / "gateway.sqlite3"
    env = {"DATABASE_URL": f"sqlite:///{database}"}
    migrated = run_manage("migrate", "--no-input", env=clean_env(**env))
    assert migrated.returncode == 0, migrated.stderr
    assert "sha256=" + hmac.new(SECRET.encode(), PAYLOAD, hashlib.sha256).hexdigest() == GITHUB_EXAMPLE
    with daphne_server(**env) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=20) as http:
            user = await LiveUser(http, server.base_url, "hooks@example.com", "dev_verify_live1").start(route=False)
            created = await http.post(
                "/gateway/v1/integrations/routes",
                json={
                    "device_id": user.device_id,
                    "interface_type": "github",
                    "verify": {"provider": "github", "secret": SECRET},
                },
                headers=user.headers,
            )
            assert created.status_code == 201, created.text
            route_id = created.json()["route"]["route_id"]
            path = urlsplit(created.json()["public_url"]).path
            ws_url = f"{user.ws_base}/gateway/v1/integrations/tunnel/connect?device_id={user.device_id}"
            tunnel = await websockets.connect(ws_url, additional_headers=user.headers)
            received: list[bytes] = []
            client = None
            try:
                assert json.loads(await tunnel.recv())["type"] == "tunnel.connected"
                await tunnel.send(json.dumps({"type": "tunnel.activate", "routes": [route_id]}))
                assert json.loads(await tunnel.recv())["results"][0]["status"] == "active"
                client = asyncio.ensure_future(tunnel_client(tunnel, received))

                genuine = await http.post(path, content=PAYLOAD, headers={"X-Hub-Signature-256": GITHUB_EXAMPLE})
                assert (genuine.status_code, genuine.text) == (200, "got it")
                forged_signature = "sha256=" + hmac.new(b"a guessed secret", PAYLOAD, hashlib.sha256).hexdigest()
                forged = await http.post(path, content=PAYLOAD, headers={"X-Hub-Signature-256": forged_signature})
                assert (forged.status_code, forged.text) == (401, "invalid signature")
                tampered = await http.post(
                    path, content=b"Hello, World?", headers={"X-Hub-Signature-256": GITHUB_EXAMPLE}
                )
                assert tampered.status_code == 401
                unsigned = await http.post(path, content=PAYLOAD)
                assert unsigned.status_code == 401
                assert received == [PAYLOAD]  # only the genuine webhook reached the tunnel

                listed = await http.get("/gateway/v1/integrations/routes", headers=user.headers)
                assert listed.json()["routes"][0]["verify"] == {"provider": "github", "configured": True}
                for answer in (created, listed):
                    assert SECRET not in answer.text

                with sqlite3.connect(database) as db:
                    row = db.execute("SELECT * FROM tunnels_integrationroute WHERE route_id = ?", [route_id]).fetchone()
                assert not any(isinstance(v, str) and "Secret" in v for v in row)
                assert any(isinstance(v, str) and v.startswith("v1:") for v in row)  # the sealed secret

                # PUT null: verification is off, an unsigned webhook passes.
                off = await http.put(
                    f"/gateway/v1/integrations/routes/{route_id}", json={"verify": None}, headers=user.headers
                )
                assert off.status_code == 200 and off.json()["route"]["verify"] is None
                assert (await http.post(path, content=b"unsigned")).status_code == 200
                assert received == [PAYLOAD, b"unsigned"]
            finally:
                if client is not None:
                    client.cancel()
                    await asyncio.gather(client, return_exceptions=True)
                await tunnel.close()
                await user.stop()
        log = server.log()
    assert "webhook signature refused" in log and route_id in log
    assert SECRET not in log and forged_signature.removeprefix("sha256=") not in log
    assert GITHUB_EXAMPLE.removeprefix("sha256=") not in log

"""The request inspector against live Daphne servers (docs/protocol/webhooks.md §2): a real tunnel client answers
webhooks, the events stream sees their records, replay goes through the tunnel again, and no secret reaches a record
or the server's log. The servers run the Procfile's production command (Daphne, whose own access log is off there,
docs/platform-notes.md). In Redis mode the stream and the webhook are on two different processes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import Iterator

import httpx
import pytest
import websockets

from tests.helpers import LiveServer, clean_env, procfile_server, run_manage

DEVICE = "dev_inspector_live1"
REDIS_DB = 13  # a database of its own on the shared test server, emptied first
SECRETS = ("Bearer sekrit-auth", "sid=sekrit-cookie", "sha256=sekrit-signature")


@pytest.fixture(scope="module")
def memory_gateway() -> Iterator[tuple[LiveServer, LiveServer]]:
    with procfile_server() as server:
        yield server, server


@pytest.fixture(scope="module")
def redis_gateways(redis_url, tmp_path_factory) -> Iterator[tuple[LiveServer, LiveServer]]:
    import redis

    url = redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()
    database = f"sqlite:///{tmp_path_factory.mktemp('inspector') / 'gateway.sqlite3'}"
    env = {"STATE_BACKEND": "redis", "REDIS_URL": url, "DATABASE_URL": database, "PUBLIC_BASE_URL": "http://gw.test"}
    migrated = run_manage("migrate", "--no-input", env=clean_env(**env), timeout=120)
    assert migrated.returncode == 0, migrated.stderr
    with procfile_server(NODE_ID="node-a", **env) as a, procfile_server(NODE_ID="node-b", **env) as b:
        yield a, b


async def tunnel_client(ws) -> None:
    """Answer every webhook 200 with `seen:<body>`."""
    async for text in ws:
        frame = json.loads(text)
        if frame.get("type") != "tunnel.request":
            continue
        body = b"seen:" + base64.b64decode(frame["body_base64"])
        answer = {
            "type": "tunnel.response",
            "request_id": frame["request_id"],
            "status": 200,
            "headers": [["Content-Type", "text/plain"]],
            "body_base64": base64.b64encode(body).decode(),
        }
        await ws.send(json.dumps(answer))


async def next_event(lines, timeout: float = 10) -> dict:
    async def read() -> dict:
        name = None
        async for line in lines:
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: ") and name == "request":
                return json.loads(line.removeprefix("data: "))
        raise AssertionError("stream ended")

    return await asyncio.wait_for(read(), timeout)


@pytest.mark.parametrize("servers", ["memory_gateway", "redis_gateways"])
async def test_inspector_live(servers, request):
    ingress_server, api_server = request.getfixturevalue(servers)
    async with (
        httpx.AsyncClient(base_url=ingress_server.base_url, timeout=15) as ingress_http,
        httpx.AsyncClient(base_url=api_server.base_url, timeout=15) as http,
    ):
        token = (
            await http.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "inspector-bot"})
        ).json()["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        created = await http.post(
            "/gateway/v1/integrations/routes",
            json={"device_id": DEVICE, "interface_type": "http", "inspect": {"capture_bodies": True}},
            headers=bearer,
        )
        assert created.status_code == 201, created.text
        route_id, route_token = created.json()["route"]["route_id"], created.json()["route_token"]
        path = f"/integrations/{route_id}/{route_token}"
        base = f"/gateway/v1/integrations/routes/{route_id}/requests"

        ws = await websockets.connect(
            f"ws://127.0.0.1:{ingress_server.port}/gateway/v1/integrations/tunnel/connect?device_id={DEVICE}",
            additional_headers=bearer,
        )
        assert json.loads(await ws.recv())["type"] == "tunnel.connected"
        await ws.send(json.dumps({"type": "tunnel.activate", "request_id": "a", "routes": [route_id]}))
        assert json.loads(await ws.recv())["results"][0]["status"] == "active"
        client = asyncio.ensure_future(tunnel_client(ws))
        try:
            async with http.stream("GET", f"{base}/events", headers=bearer) as stream:
                assert stream.status_code == 200
                lines = stream.aiter_lines()
                assert await asyncio.wait_for(anext(lines), 10) == ":connected"
                sent = await ingress_http.post(
                    f"{path}?src=live",
                    content=b"payload",
                    headers={"Authorization": SECRETS[0], "Cookie": SECRETS[1], "X-Hub-Signature-256": SECRETS[2]},
                )
                assert (sent.status_code, sent.content) == (200, b"seen:payload")
                event = await next_event(lines)
                assert (event["status"], event["delivery"], event["query"]) == (200, "live", "src=live")
                assert event["headers"]["authorization"] == "[redacted]"

                replayed = await http.post(f"{base}/{event['request_id']}/replay", headers=bearer)
                assert replayed.status_code == 200, replayed.text
                replay = replayed.json()
                assert (replay["replay_of"], replay["response"]["body_size"]) == (event["request_id"], 12)
                assert (await next_event(lines))["request_id"] == replay["request_id"]

            listed = (await http.get(base, headers=bearer)).json()["requests"]
            assert [r["request_id"] for r in listed] == [replay["request_id"], event["request_id"]]
            one = await http.get(f"{base}/{event['request_id']}", headers=bearer)
            assert one.json() == event
        finally:
            client.cancel()
            with contextlib.suppress(Exception):
                await ws.close()
        gone = await http.post(f"{base}/{event['request_id']}/replay", headers=bearer)
        assert (gone.status_code, gone.json()["error"]["code"]) == (503, "tunnel_unavailable")
        text = json.dumps(listed)
        logs = ingress_server.log() + api_server.log()
        assert route_id in logs  # the log is the real one
        for secret in (route_token, *SECRETS):
            assert secret not in text
            assert secret not in logs

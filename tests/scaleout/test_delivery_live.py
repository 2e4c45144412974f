"""Delivery across two real gateway processes (docs/architecture.md, "Delivery across processes"): two servers with
STATE_BACKEND=redis share a real Redis server and one SQLite file. The agent, the tunnel and the clients connect to the
process the test chooses, so every frame below has to cross from one process to the other.

Process A runs under uvicorn, which passes a server's WebSocket close reason on (Daphne drops it,
docs/platform-notes.md), so the reasons of sockets closed from the other process can be checked there; B runs under
Daphne, the production server."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
import websockets

from tests.e2ee import AgentSide, ClientSide, open_frame
from tests.helpers import LiveServer, clean_env, daphne_server, run_manage, uvicorn_server
from tests.live_session import Events, agent_loop, handshake
from tests.oauth_helpers import live_sign_in

AGENT_SCOPE = "read_assets write_assets offline_access device"
REDIS_DB = 14  # a database of its own on the shared test server, emptied first


@pytest.fixture(scope="module")
def gateways(redis_url, tmp_path_factory) -> Iterator[tuple[LiveServer, LiveServer]]:
    import redis

    url = redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()
    database = f"sqlite:///{tmp_path_factory.mktemp('delivery') / 'gateway.sqlite3'}"
    env = {
        "STATE_BACKEND": "redis",
        "REDIS_URL": url,
        "DATABASE_URL": database,
        "PUBLIC_BASE_URL": "http://gateway.test",
    }
    migrated = run_manage("migrate", "--no-input", env=clean_env(**env), timeout=120)
    assert migrated.returncode == 0, migrated.stderr
    with uvicorn_server(NODE_ID="node-a", **env) as a, daphne_server(NODE_ID="node-b", **env) as b:
        yield a, b


async def sign_in(http: httpx.AsyncClient, email: str, scope: str = AGENT_SCOPE) -> dict[str, str]:
    return {"Authorization": f"Bearer {await live_sign_in(http, email, scope)}"}


async def register_device(http: httpx.AsyncClient, owner: dict[str, str], device: str, keys: AgentSide) -> None:
    key = {"algorithm": "ed25519", "public_key": keys.identity_b64}
    response = await http.put(f"/gateway/v1/devices/{device}/identity-key", json=key, headers=owner)
    assert response.status_code == 204, response.text


async def agent_socket(server: LiveServer, owner: dict[str, str], device: str):
    ws = await websockets.connect(
        f"ws://127.0.0.1:{server.port}/gateway/v1/agent/connect?device_id={device}",
        additional_headers={**owner, "X-Device-Id": device},
    )
    assert json.loads(await ws.recv())["type"] == "gateway.connected"
    assert json.loads(await ws.recv())["type"] == "transport.init"
    return ws


async def frames_until(ws, kind: str) -> dict:
    """The next frame of type `kind` (others, like transport renewals, are skipped)."""
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
        if frame["type"] == kind:
            return frame


async def test_a_session_across_processes(gateways):
    a, b = gateways
    device = "dev_x_" + uuid.uuid4().hex[:12]
    async with (
        httpx.AsyncClient(base_url=a.base_url, timeout=15) as on_a,
        httpx.AsyncClient(base_url=b.base_url, timeout=15) as on_b,
    ):
        owner = await sign_in(on_b, "owner@example.com")
        keys = AgentSide.new()
        await register_device(on_b, owner, device, keys)
        ws = await agent_socket(a, owner, device)
        agent = asyncio.ensure_future(agent_loop(ws, keys, {"http": on_b, "headers": owner}))
        try:
            # client-init on B hands the handshake request to the agent on A; its acks come back (HTTP to B and a
            # frame on A), and a stream opened on B replays them from the shared backlog.
            client = ClientSide.new(str(uuid.uuid4()), str(uuid.uuid4()), device)
            await handshake(on_b, owner, client, keys)
            events = Events(on_b, client.session_id, owner)
            await events.start()
            assert [(await events.next())[2]["type"] for _ in range(2)] == ["session.handshake.ack"] * 2

            # A message POSTed to B reaches the agent socket on A; the agent's frames on A reach the stream on B.
            sent = client.message("across", "msg_1")
            posted = await on_b.post(f"/gateway/v1/sessions/{client.session_id}/messages", json=sent, headers=owner)
            assert posted.status_code == 202, posted.text
            progress, result = await events.next(), await events.next()
            assert json.loads(open_frame(client.a2c, progress[2], "agent_to_client", 1))["status"] == "running"
            assert json.loads(open_frame(client.a2c, result[2], "agent_to_client", 2))["result"] == "echo: across"

            # A stream on A of the same session sees the next answer too; both stay in order.
            also = Events(on_a, client.session_id, {**owner, "Last-Event-ID": result[0]})
            await also.start()
            second = client.message("twice", "msg_2")
            posted = await on_a.post(f"/gateway/v1/sessions/{client.session_id}/messages", json=second, headers=owner)
            assert posted.status_code == 202, posted.text
            on_b_ids = [(await events.next())[0] for _ in range(2)]
            on_a_ids = [(await also.next())[0] for _ in range(2)]
            assert on_b_ids == on_a_ids and int(on_b_ids[0]) < int(on_b_ids[1])

            # Last-Event-ID replay works on either process.
            await events.stop()
            resumed = Events(on_a, client.session_id, {**owner, "Last-Event-ID": progress[0]})
            await resumed.start()
            replayed = [(await resumed.next())[0] for _ in range(3)]
            assert replayed == [result[0], *on_b_ids]
            await resumed.stop()
            await also.stop()
        finally:
            agent.cancel()
            await ws.close()

        # With the agent gone from A, a message POSTed to B is refused as the contract says (nothing reached it).
        third = client.message("nobody", "msg_3")
        refused = await on_b.post(f"/gateway/v1/sessions/{client.session_id}/messages", json=third, headers=owner)
        assert (refused.status_code, refused.json()["error"]) == (503, "agent_unavailable")


async def test_a_burst_of_agent_frames_crosses_complete_and_in_order(gateways):
    """The agent writes without waiting (Redis mode batches its frames, relay/frame_lane.py): every frame reaches the
    streams on both processes once and in order, a replayed seq is dropped, and a frame of a session the agent may
    not write to, in the middle of the burst, is answered with its error."""
    a, b = gateways
    device = "dev_b_" + uuid.uuid4().hex[:12]
    async with (
        httpx.AsyncClient(base_url=a.base_url, timeout=15) as on_a,
        httpx.AsyncClient(base_url=b.base_url, timeout=15) as on_b,
    ):
        owner = await sign_in(on_b, "burst@example.com")
        keys = AgentSide.new()
        await register_device(on_b, owner, device, keys)
        ws = await agent_socket(a, owner, device)
        agent = asyncio.ensure_future(agent_loop(ws, keys, {"http": on_b, "headers": owner}))
        client = ClientSide.new(str(uuid.uuid4()), str(uuid.uuid4()), device)
        await handshake(on_b, owner, client, keys)
        on_b_events, on_a_events = Events(on_b, client.session_id, owner), Events(on_a, client.session_id, owner)
        await on_b_events.start()
        await on_a_events.start()
        for stream in (on_b_events, on_a_events):
            assert [(await stream.next())[2]["type"] for _ in range(2)] == ["session.handshake.ack"] * 2
        agent.cancel()
        await asyncio.gather(agent, return_exceptions=True)
        try:
            sid = client.session_id
            replies = [keys.reply(sid, "session.progress", f"m{n}", {"n": n}) for n in range(1, 151)]
            stranger = {**replies[0], "session_id": "sess_" + uuid.uuid4().hex}
            burst = [*replies[:100], replies[49], stranger, *replies[100:]]
            for frame in burst:
                await ws.send(json.dumps(frame))
            for stream in (on_b_events, on_a_events):
                received = [await stream.next() for _ in range(150)]
                plain = [
                    json.loads(open_frame(client.a2c, e[2], "agent_to_client", n)) for n, e in enumerate(received, 1)
                ]
                assert [p["n"] for p in plain] == list(range(1, 151))
                assert [int(e[0]) for e in received] == sorted(int(e[0]) for e in received)
            error = await frames_until(ws, "agent.error")
            assert (error["error"], error["session_id"]) == ("unauthorized_session_frame", stranger["session_id"])
            last = keys.reply(sid, "session.result", "m151", {"n": 151})
            await ws.send(json.dumps(last))
            for stream in (on_b_events, on_a_events):  # the replayed frame never came: next is the new one
                assert json.loads(open_frame(client.a2c, (await stream.next())[2], "agent_to_client", 151))["n"] == 151
        finally:
            await on_b_events.stop()
            await on_a_events.stop()
            await ws.close()


async def test_a_second_socket_on_another_process_replaces_the_first(gateways):
    a, b = gateways
    device = "dev_r_" + uuid.uuid4().hex[:12]
    async with (
        httpx.AsyncClient(base_url=a.base_url, timeout=15) as on_a,
        httpx.AsyncClient(base_url=b.base_url, timeout=15) as on_b,
    ):
        owner = await sign_in(on_a, "replacer@example.com")
        keys = AgentSide.new()
        await register_device(on_a, owner, device, keys)
        first = await agent_socket(a, owner, device)
        second = await agent_socket(b, owner, device)
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(first.recv(), timeout=10)
        assert (first.close_code, first.close_reason) == (1000, "replaced_by_new_connection")

        # The new socket on B gets the handshake request of a client-init on A.
        client = ClientSide.new(str(uuid.uuid4()), str(uuid.uuid4()), device)
        init = await on_a.post(
            f"/gateway/v1/sessions/{client.session_id}/handshake/client-init",
            json=client.init_body(),
            headers=owner,
        )
        assert init.status_code == 202, init.text
        request = await frames_until(second, "session.handshake.request")
        assert request["session_id"] == client.session_id

        # And back: a socket on A replaces the one on B. Deleting the device through B then closes it on A.
        third = await agent_socket(a, owner, device)
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(second.recv(), timeout=10)
        assert second.close_code == 1000  # Daphne drops the reason
        deleted = await on_b.delete(f"/gateway/v1/devices/{device}", headers=owner)
        assert deleted.status_code == 204, deleted.text
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(third.recv(), timeout=10)
        assert (third.close_code, third.close_reason) == (1000, "device_deleted")


async def test_webhooks_through_one_process_to_a_tunnel_on_the_other(gateways):
    a, b = gateways
    device = "dev_w_" + uuid.uuid4().hex[:12]
    async with (
        httpx.AsyncClient(base_url=a.base_url, timeout=15) as on_a,
        httpx.AsyncClient(base_url=b.base_url, timeout=15) as on_b,
    ):
        owner = await sign_in(on_a, "hooks@example.com")
        await register_device(on_a, owner, device, AgentSide.new())

        async def route(**body) -> tuple[str, str]:
            created = await on_b.post(
                "/gateway/v1/integrations/routes",
                json={"device_id": device, "interface_type": "http", **body},
                headers=owner,
            )
            assert created.status_code == 201, created.text
            data = created.json()
            return data["route"]["route_id"], data["public_url"].removeprefix("http://gateway.test")

        (echo_id, echo), (silent_id, silent) = await route(), await route(deadline_ms=10000)
        ws = await websockets.connect(
            f"ws://127.0.0.1:{a.port}/gateway/v1/integrations/tunnel/connect?device_id={device}",
            additional_headers=owner,
        )
        assert json.loads(await ws.recv())["type"] == "tunnel.connected"
        await ws.send(json.dumps({"type": "tunnel.activate", "request_id": "act-1", "routes": [echo_id, silent_id]}))
        assert [r["status"] for r in json.loads(await ws.recv())["results"]] == ["active", "active"]
        arrived: asyncio.Queue = asyncio.Queue()

        async def tunnel_client() -> None:
            async for text in ws:
                frame = json.loads(text)
                await arrived.put(frame)
                if frame.get("type") == "tunnel.request" and frame["route_id"] == echo_id:
                    answer = {
                        "type": "tunnel.response",
                        "request_id": frame["request_id"],
                        "status": 201,
                        "headers": [["Content-Type", "application/octet-stream"], ["X-Node", "tunnel-on-a"]],
                        "body_base64": frame["body_base64"],
                    }
                    await ws.send(json.dumps(answer))

        client = asyncio.ensure_future(tunnel_client())
        try:
            # The webhook arrives at B, is written to the tunnel on A, and A's answer comes back through B.
            payload = bytes(range(256)) * 8
            got = await on_b.post(echo, content=payload, headers={"Content-Type": "application/octet-stream"})
            assert (got.status_code, got.headers["x-node"], got.content) == (201, "tunnel-on-a", payload)
            request = await asyncio.wait_for(arrived.get(), timeout=10)
            assert request["type"] == "tunnel.request" and base64.b64decode(request["body_base64"]) == payload

            # A route update through B reaches the tunnel on A.
            updated = await on_b.put(
                f"/gateway/v1/integrations/routes/{echo_id}", json={"status": "inactive"}, headers=owner
            )
            assert updated.status_code == 200, updated.text
            notice = await asyncio.wait_for(arrived.get(), timeout=10)
            assert (notice["type"], notice["route_id"], notice["reason"]) == (
                "tunnel.route_deactivated",
                echo_id,
                "route_updated",
            )

            # A tunnel lost on A fails the webhook waiting on B at once (503), long before its 10 s deadline.
            waiting = asyncio.ensure_future(on_b.post(silent, content=b"wait"))
            request = await asyncio.wait_for(arrived.get(), timeout=10)
            assert (request["type"], request["route_id"]) == ("tunnel.request", silent_id)
            client.cancel()
            await ws.close()
            lost = await asyncio.wait_for(waiting, timeout=5)
            assert (lost.status_code, lost.text) == (503, "Service Unavailable")
            assert (await on_b.post(silent, content=b"gone")).status_code == 503  # no tunnel holds it any more
        finally:
            client.cancel()
            await ws.close()

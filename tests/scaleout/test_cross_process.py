"""Every flow of the relay with its two ends on different gateway processes (docs/scaling.md): two Procfile processes
sharing Redis and PostgreSQL behind nginx (tests/scaleout/cluster.py). Process A holds the agent and tunnel sockets,
process B serves the client, so each frame, message, webhook and revocation crosses processes."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
import websockets

from tests.e2ee import AgentSide, ClientSide, open_frame
from tests.live_session import Events, agent_loop, handshake, sign_in

OWNER_SCOPE = "profile email device"


def device_id() -> str:
    return "dev_xp_" + uuid.uuid4().hex[:16]


@pytest.fixture
async def ends(cluster):
    """HTTP clients for process A, process B and the balancer."""
    async with (
        httpx.AsyncClient(base_url=cluster.url(0), timeout=20) as a,
        httpx.AsyncClient(base_url=cluster.url(1), timeout=20) as b,
        httpx.AsyncClient(base_url=cluster.base_url, timeout=20) as balanced,
    ):
        yield a, b, balanced


async def register(http: httpx.AsyncClient, headers: dict[str, str], device: str) -> AgentSide:
    keys = AgentSide.new()
    body = {"algorithm": "ed25519", "public_key": keys.identity_b64}
    put = await http.put(f"/gateway/v1/devices/{device}/identity-key", json=body, headers=headers)
    assert put.status_code == 204, put.text
    return keys


async def connect_agent(base_url: str, headers: dict[str, str], device: str):
    ws_url = base_url.replace("http://", "ws://") + f"/gateway/v1/agent/connect?device_id={device}"
    return await websockets.connect(ws_url, additional_headers={**headers, "X-Device-Id": device})


class Agent:
    """An agent simulator on one process: acks handshakes (over HTTP on that process and over its socket) and answers
    every message with a progress and a result frame."""

    def __init__(self, ws, keys: AgentSide, http: httpx.AsyncClient, headers: dict[str, str]) -> None:
        self.ws = ws
        self.task = asyncio.ensure_future(agent_loop(ws, keys, {"http": http, "headers": headers}))

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.ws.close()


async def answered(client: ClientSide, events: Events, first_seq: int) -> list[dict]:
    progress, result = await events.next(), await events.next()
    return [
        json.loads(open_frame(client.a2c, progress[2], "agent_to_client", first_seq)),
        json.loads(open_frame(client.a2c, result[2], "agent_to_client", first_seq + 1)),
    ]


async def test_an_encrypted_session_with_agent_and_client_on_different_processes(cluster, ends):
    a, b, _ = ends
    owner = await sign_in(a, "owner@example.com", OWNER_SCOPE)
    device = device_id()
    keys = await register(a, owner, device)
    agent = Agent(await connect_agent(cluster.url(0), owner, device), keys, a, owner)
    try:
        client = ClientSide.new(str(uuid.uuid4()), str(uuid.uuid4()), device)
        await handshake(b, owner, client, keys)  # client-init on B reaches the agent on A
        events = Events(b, client.session_id, owner)
        await events.start()
        assert [(await events.next())[2]["type"] for _ in range(2)] == ["session.handshake.ack"] * 2

        post = await b.post(
            f"/gateway/v1/sessions/{client.session_id}/messages", json=client.message("hello", "m1"), headers=owner
        )
        assert post.status_code == 202, post.text
        progress, result = await answered(client, events, 1)
        assert (progress["status"], result["result"]) == ("running", "echo: hello")
        await events.stop()

        # Missed events come back from the shared backlog on the other process.
        second = await a.post(
            f"/gateway/v1/sessions/{client.session_id}/messages", json=client.message("again", "m2"), headers=owner
        )
        assert second.status_code == 202
        resumed = Events(a, client.session_id, {**owner, "Last-Event-ID": "0"})
        await resumed.start()
        replayed = [await resumed.next() for _ in range(6)]
        assert [e[2]["type"] for e in replayed[:2]] == ["session.handshake.ack"] * 2
        assert json.loads(open_frame(client.a2c, replayed[5][2], "agent_to_client", 4))["result"] == "echo: again"
        await resumed.stop()
    finally:
        await agent.stop()


async def test_twenty_posts_of_one_seq_split_between_processes_are_accepted_once(cluster, ends):
    a, b, _ = ends
    owner = await sign_in(b, "racer@example.com", OWNER_SCOPE)
    device = device_id()
    keys = await register(b, owner, device)
    agent = Agent(await connect_agent(cluster.url(0), owner, device), keys, a, owner)
    try:
        client = ClientSide.new(str(uuid.uuid4()), str(uuid.uuid4()), device)
        await handshake(b, owner, client, keys)
        frame = client.message("only once", "m-race")
        path = f"/gateway/v1/sessions/{client.session_id}/messages"
        answers = await asyncio.gather(
            *(
                (a if n % 2 else b).post(path, json=frame, headers={**owner, "X-Idempotency-Key": f"race-{n}"})
                for n in range(20)
            )
        )
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [202] + [409] * 19, statuses
        assert {r.json()["error"] for r in answers if r.status_code == 409} == {"replay_detected"}
    finally:
        await agent.stop()


async def test_a_second_agent_socket_on_another_process_replaces_the_first(cluster, ends):
    a, b, _ = ends
    owner = await sign_in(a, "replace@example.com", OWNER_SCOPE)
    device = device_id()
    await register(a, owner, device)
    first = await connect_agent(cluster.url(0), owner, device)
    assert json.loads(await first.recv())["type"] == "gateway.connected"
    second = await connect_agent(cluster.url(1), owner, device)
    assert json.loads(await second.recv())["type"] == "gateway.connected"
    await asyncio.wait_for(first.wait_closed(), timeout=10)
    assert first.close_code == 1000
    assert first.close_reason in ("", "replaced_by_new_connection")
    listing = (await a.get("/gateway/v1/devices", headers=owner)).json()["devices"]
    assert [(d["device_id"], d["status"]) for d in listing] == [(device, "online")]
    await second.close()


async def test_a_revoke_on_one_process_ends_the_grantees_stream_on_the_other(cluster, ends):
    a, b, _ = ends
    owner = await sign_in(a, "sharer@example.com", OWNER_SCOPE)
    bob = await sign_in(b, "bob@example.com", "profile email")
    device = device_id()
    keys = await register(a, owner, device)
    agent = Agent(await connect_agent(cluster.url(0), owner, device), keys, a, owner)
    try:
        invite = await a.post(
            "/gateway/v1/shares/invites", json={"deviceId": device, "email": "bob@example.com"}, headers=owner
        )
        token = invite.json()["inviteUrl"].rsplit("/", 1)[1]
        accepted = await b.post("/gateway/v1/shares/invites/accept", json={"token": token}, headers=bob)
        grant_id = accepted.json()["grantId"]
        shared = ClientSide.new(str(uuid.uuid4()), str(uuid.uuid4()), device)
        await handshake(b, bob, shared, keys)
        events = Events(b, shared.session_id, bob)
        await events.start()
        await events.next()
        await events.next()
        assert (await a.post(f"/gateway/v1/shares/grants/{grant_id}/revoke", headers=owner)).status_code == 200
        ended = await events.next()
        assert (ended[1], ended[2]["reason"]) == ("session.ended", "grant_revoked")
        await asyncio.wait_for(events.ended.wait(), timeout=10)
        refused = await b.post(
            f"/gateway/v1/sessions/{shared.session_id}/messages", json=shared.message("late", "m-late"), headers=bob
        )
        assert refused.status_code in (403, 404)
    finally:
        await agent.stop()


async def test_deleting_a_device_on_one_process_closes_its_agent_on_the_other(cluster, ends):
    a, b, _ = ends
    owner = await sign_in(a, "deleter@example.com", OWNER_SCOPE)
    device = device_id()
    await register(a, owner, device)
    ws = await connect_agent(cluster.url(0), owner, device)
    assert json.loads(await ws.recv())["type"] == "gateway.connected"
    assert (await b.delete(f"/gateway/v1/devices/{device}", headers=owner)).status_code in (200, 204)
    await asyncio.wait_for(ws.wait_closed(), timeout=10)
    listing = (await a.get("/gateway/v1/devices", headers=owner)).json()["devices"]
    assert device not in [d["device_id"] for d in listing]


async def test_a_webhook_arriving_at_one_process_is_answered_by_the_tunnel_on_the_other(cluster, ends):
    a, b, _ = ends
    owner = await sign_in(a, "hooks@example.com", OWNER_SCOPE)
    device = device_id()
    await register(a, owner, device)
    created = await a.post(
        "/gateway/v1/integrations/routes", json={"device_id": device, "interface_type": "http"}, headers=owner
    )
    assert created.status_code == 201, created.text
    route = created.json()
    route_id = route["route"]["route_id"]
    path = f"/integrations/{route_id}/{route['route_token']}"
    ws_url = cluster.url(0).replace("http://", "ws://") + f"/gateway/v1/integrations/tunnel/connect?device_id={device}"
    tunnel = await websockets.connect(ws_url, additional_headers=owner)
    try:
        assert json.loads(await tunnel.recv())["type"] == "tunnel.connected"
        await tunnel.send(json.dumps({"type": "tunnel.activate", "request_id": "act-1", "routes": [route_id]}))
        assert [r["status"] for r in json.loads(await tunnel.recv())["results"]] == ["active"]

        async def serve() -> None:
            async for text in tunnel:
                frame = json.loads(text)
                if frame.get("type") == "tunnel.request":
                    await tunnel.send(
                        json.dumps(
                            {
                                "type": "tunnel.response",
                                "request_id": frame["request_id"],
                                "status": 201,
                                "headers": [["Content-Type", "text/plain"]],
                                "body_base64": frame["body_base64"],
                            }
                        )
                    )
                elif frame.get("type") == "tunnel.route_deactivated":
                    deactivated.set_result(frame)

        deactivated: asyncio.Future = asyncio.get_running_loop().create_future()
        server = asyncio.ensure_future(serve())
        answers = await asyncio.gather(*(b.post(path, content=f"hook {n}".encode()) for n in range(5)))
        assert [(r.status_code, r.text) for r in answers] == [(201, f"hook {n}") for n in range(5)]

        # Disabling the route on B reaches the tunnel on A.
        put = await b.put(f"/gateway/v1/integrations/routes/{route_id}", json={"status": "inactive"}, headers=owner)
        assert put.status_code == 200, put.text
        frame = await asyncio.wait_for(deactivated, timeout=10)
        assert frame["route_id"] == route_id
        assert (await b.post(path, content=b"after")).status_code == 503
        server.cancel()
        await asyncio.gather(server, return_exceptions=True)
    finally:
        await tunnel.close()


async def test_a_whole_session_through_nginx(cluster, ends):
    _, _, balanced = ends
    owner = await sign_in(balanced, "nginx@example.com", OWNER_SCOPE)
    device = device_id()
    keys = await register(balanced, owner, device)
    agent = Agent(await connect_agent(cluster.base_url, owner, device), keys, balanced, owner)
    try:
        client = ClientSide.new(str(uuid.uuid4()), str(uuid.uuid4()), device)
        await handshake(balanced, owner, client, keys)
        events = Events(balanced, client.session_id, owner)
        await events.start()
        await events.next()
        await events.next()
        for n in range(4):  # consecutive requests land on both processes
            post = await balanced.post(
                f"/gateway/v1/sessions/{client.session_id}/messages",
                json=client.message(f"via nginx {n}", f"m{n}"),
                headers=owner,
            )
            assert post.status_code == 202, post.text
            _, result = await answered(client, events, 2 * n + 1)
            assert result["result"] == f"echo: via nginx {n}"
        await events.stop()
    finally:
        await agent.stop()

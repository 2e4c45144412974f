"""Two gateway processes sharing Redis and PostgreSQL behave as one gateway (docs/scaling.md): a token, a device, a
session or an invite made through one process is the same on the other and through nginx, and the races the contract
settles atomically stay exact when their requests are split between the processes."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from tests.e2ee import AgentSide, ClientSide
from tests.live_session import sign_in


def device_id() -> str:
    return "dev_cl_" + uuid.uuid4().hex[:16]


async def register(http: httpx.AsyncClient, headers: dict[str, str], device: str) -> AgentSide:
    keys = AgentSide.new()
    body = {"algorithm": "ed25519", "public_key": keys.identity_b64, "display_name": "cluster box"}
    put = await http.put(f"/gateway/v1/devices/{device}/identity-key", json=body, headers=headers)
    assert put.status_code == 204, put.text
    return keys


async def test_state_made_on_one_process_is_seen_on_the_other_and_through_nginx(cluster):
    async with (
        httpx.AsyncClient(base_url=cluster.url(0), timeout=15) as a,
        httpx.AsyncClient(base_url=cluster.url(1), timeout=15) as b,
        httpx.AsyncClient(base_url=cluster.base_url, timeout=15) as balanced,
    ):
        owner = await sign_in(a, "owner@example.com", "profile email device")
        device = device_id()
        await register(b, owner, device)
        for http in (a, b, balanced, balanced):
            listing = (await http.get("/gateway/v1/devices", headers=owner)).json()["devices"]
            assert device in [d["device_id"] for d in listing]

        # A session created on B (its agent is offline, so it waits) is the same session on A.
        client = ClientSide.new(str(uuid.uuid4()), str(uuid.uuid4()), device)
        init = await b.post(
            f"/gateway/v1/sessions/{client.session_id}/handshake/client-init", json=client.init_body(), headers=owner
        )
        assert init.status_code == 202, init.text
        path = f"/gateway/v1/sessions/{client.session_id}/handshake/{client.handshake_id}"
        on_a, on_b = (await a.get(path, headers=owner)).json(), (await b.get(path, headers=owner)).json()
        assert on_a == on_b and on_a["status"] == "pending_agent_connection"

        health = [(await http.get("/readyz")).json() for http in (a, b)]
        assert [h["state_backend"] for h in health] == ["redis", "redis"]


async def test_parallel_accepts_of_one_invite_split_between_processes_have_one_winner(cluster):
    async with (
        httpx.AsyncClient(base_url=cluster.url(0), timeout=30) as a,
        httpx.AsyncClient(base_url=cluster.url(1), timeout=30) as b,
    ):
        owner = await sign_in(a, "owner@example.com", "profile email device")
        bob = await sign_in(b, "bob@example.com", "profile email")
        device = device_id()
        await register(a, owner, device)
        created = await a.post(
            "/gateway/v1/shares/invites", json={"deviceId": device, "email": "bob@example.com"}, headers=owner
        )
        assert created.status_code == 201, created.text
        token = created.json()["inviteUrl"].rsplit("/", 1)[1]
        answers = await asyncio.gather(
            *(
                (a if i % 2 else b).post("/gateway/v1/shares/invites/accept", json={"token": token}, headers=bob)
                for i in range(20)
            )
        )
        statuses = sorted(r.status_code for r in answers)
        assert statuses.count(200) == 1, statuses
        assert set(statuses) - {200} <= {404, 409}, statuses
        grants = (await b.get(f"/gateway/v1/shares/devices/{device}/grants", headers=owner)).json()
        assert [g["status"] for g in grants["grants"]] == ["active"]


async def test_the_route_limit_per_owner_is_exact_across_processes(cluster):
    async with (
        httpx.AsyncClient(base_url=cluster.url(0), timeout=60) as a,
        httpx.AsyncClient(base_url=cluster.url(1), timeout=60) as b,
    ):
        owner = await sign_in(a, "router@example.com", "profile email device")
        device = device_id()
        await register(a, owner, device)

        def create(http: httpx.AsyncClient, n: int):
            body = {"device_id": device, "interface_type": "http", "interface_id": f"hook-{n}"}
            return http.post("/gateway/v1/integrations/routes", json=body, headers=owner)

        for n in range(90):
            assert (await create(a if n % 2 else b, n)).status_code == 201
        answers = await asyncio.gather(*(create(a if n % 2 else b, 100 + n) for n in range(20)))
        statuses = [r.status_code for r in answers]
        assert sorted(statuses) == [201] * 10 + [429] * 10, statuses
        listing = (await b.get("/gateway/v1/integrations/routes", headers=owner)).json()
        assert len(listing["routes"]) == 100

"""A gateway process dies with an agent on it (docs/scaling.md): its sessions live in Redis, so the agent reconnects to
the other process and the client goes on with the same session, without a new handshake."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest

from tests.e2ee import ClientSide, open_frame
from tests.helpers import wait_for
from tests.live_session import Events, handshake, sign_in
from tests.scaleout.cluster import gateway_cluster, require_nginx
from tests.scaleout.test_cross_process import Agent, connect_agent, device_id, register


@pytest.fixture
def own_cluster(redis_url, postgres_url):
    require_nginx()
    with gateway_cluster(redis_url, postgres_url) as running:
        yield running


async def test_an_agent_whose_process_died_resumes_its_sessions_on_another(own_cluster):
    cluster = own_cluster
    async with (
        httpx.AsyncClient(base_url=cluster.url(0), timeout=20) as a,
        httpx.AsyncClient(base_url=cluster.url(1), timeout=20) as b,
    ):
        owner = await sign_in(b, "survivor@example.com", "profile email device")
        device = device_id()
        keys = await register(b, owner, device)
        agent = Agent(await connect_agent(cluster.url(0), owner, device), keys, a, owner)
        client = ClientSide.new(str(uuid.uuid4()), str(uuid.uuid4()), device)
        await handshake(b, owner, client, keys)

        cluster.nodes[0].process.kill()  # no goodbye: presence, leases and groups of A are left behind
        await asyncio.wait_for(agent.ws.wait_closed(), timeout=15)
        agent.task.cancel()
        await asyncio.gather(agent.task, return_exceptions=True)

        again = Agent(await connect_agent(cluster.url(1), owner, device), keys, b, owner)
        try:
            events = Events(b, client.session_id, owner)
            await events.start()
            await events.next()
            await events.next()
            path = f"/gateway/v1/sessions/{client.session_id}/messages"
            post = await b.post(path, json=client.message("still there?", "m-after"), headers=owner)
            assert post.status_code == 202, post.text
            await events.next()
            result = json.loads(open_frame(client.a2c, (await events.next())[2], "agent_to_client", 2))
            assert result["result"] == "echo: still there?"
            listing = (await b.get("/gateway/v1/devices", headers=owner)).json()["devices"]
            assert [(d["device_id"], d["status"]) for d in listing] == [(device, "online")]
            await events.stop()
        finally:
            await again.stop()
        wait_for(lambda: cluster.nodes[0].process.poll() is not None, timeout=5)

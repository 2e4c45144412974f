"""Metrics with several processes (docs/operations.md): two Daphne processes with STATE_BACKEND=redis share a real
Redis server and one SQLite file; each exposes its own metrics, labelled with its NODE_ID. The agent connects to A, the
client to B, so each direction is counted where its frame arrived, and the sessions gauge is the shared count."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
import websockets

from tests.e2ee import AgentSide, ClientSide
from tests.helpers import LiveServer, clean_env, daphne_server, run_manage
from tests.live_session import Events, agent_loop, handshake
from tests.metrics_helpers import Exposition, missing_samples, parse
from tests.oauth_helpers import live_sign_in
from tests.scaleout.cluster import fresh_redis

DEVICE = "dev_metrics_nodes_" + uuid.uuid4().hex[:12]


@pytest.fixture(scope="module")
def gateways(redis_url, tmp_path_factory) -> Iterator[tuple[LiveServer, LiveServer]]:
    env = {
        "STATE_BACKEND": "redis",
        "REDIS_URL": fresh_redis(redis_url),
        "DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('metrics') / 'gateway.sqlite3'}",
        "PUBLIC_BASE_URL": "http://gateway.test",
    }
    migrated = run_manage("migrate", "--no-input", env=clean_env(**env), timeout=120)
    assert migrated.returncode == 0, migrated.stderr
    with daphne_server(NODE_ID="metrics-a", **env) as a, daphne_server(NODE_ID="metrics-b", **env) as b:
        yield a, b


async def scrape(server: LiveServer) -> Exposition:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    return parse(response.text)


async def until(server: LiveServer, check) -> Exposition:
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        exposition = await scrape(server)
        if check(exposition):
            return exposition
        assert asyncio.get_running_loop().time() < deadline, "the metrics did not get there"
        await asyncio.sleep(0.05)


async def test_each_process_exposes_its_own_metrics_under_its_node_id(gateways):
    a, b = gateways
    before_a, before_b = await scrape(a), await scrape(b)
    assert before_a.nodes() == {"metrics-a"} and before_b.nodes() == {"metrics-b"}
    assert set(missing_samples(before_a)) <= {"gateway_ingress_requests_total"}  # no webhook so far
    async with httpx.AsyncClient(base_url=b.base_url, timeout=15) as http:
        owner = {"Authorization": f"Bearer {await live_sign_in(http, 'nodes@example.com', 'device offline_access')}"}
        keys = AgentSide.new()
        body = {"algorithm": "ed25519", "public_key": keys.identity_b64}
        registered = await http.put(f"/gateway/v1/devices/{DEVICE}/identity-key", json=body, headers=owner)
        assert registered.status_code == 204
        ws = await websockets.connect(
            f"ws://127.0.0.1:{a.port}/gateway/v1/agent/connect?device_id={DEVICE}",
            additional_headers={**owner, "X-Device-Id": DEVICE},
        )
        agent = asyncio.ensure_future(agent_loop(ws, keys, {"http": http, "headers": owner}))
        try:
            await until(a, lambda e: e.get("gateway_agents_connected") == 1)
            client = ClientSide.new(str(uuid.uuid4()), str(uuid.uuid4()), DEVICE)
            await handshake(http, owner, client, keys)
            events = Events(http, client.session_id, owner)
            await events.start()
            await events.next()
            await events.next()
            posted = await http.post(
                f"/gateway/v1/sessions/{client.session_id}/messages", json=client.message("hi", "m1"), headers=owner
            )
            assert posted.status_code == 202
            await events.next()
            await events.next()
            on_a = await until(a, lambda e: e.get("gateway_relay_frames_total", direction="agent_to_client") >= 3)
            on_b = await until(b, lambda e: e.get("gateway_sse_streams_open", kind="session") == 1)
            await events.stop()
        finally:
            agent.cancel()
            await ws.close()
    # The agent socket, and so the agent's frames (two acks' worth of events and two replies), are A's.
    assert on_a.get("gateway_agents_connected") == 1 and on_b.get("gateway_agents_connected") == 0
    assert on_a.get("gateway_relay_frames_total", direction="agent_to_client") == 3  # the socket ack, two replies
    assert on_b.get("gateway_relay_frames_total", direction="agent_to_client") == 0
    # The client's POST arrived at B, which wrote it to A's socket through A's inbox.
    assert on_b.get("gateway_relay_frames_total", direction="client_to_agent") == 1
    assert on_a.get("gateway_relay_frames_total", direction="client_to_agent") == 0
    assert on_b.get("gateway_relay_latency_seconds_count", direction="client_to_agent") == 1
    # The HTTP ack was posted to B; the handshake counts once, where the session was acknowledged.
    assert on_a.get("gateway_handshakes_total", result="ok") + on_b.get("gateway_handshakes_total", result="ok") == 1
    # Sessions live in Redis: both processes report the deployment's count.
    assert on_a.get("gateway_sessions_live") == on_b.get("gateway_sessions_live") == 1
    assert on_a.get("gateway_sse_streams_open", kind="session") == 0
    await until(a, lambda e: e.get("gateway_agents_connected") == 0)
    text = (await scrape(a)).text + (await scrape(b)).text
    assert "nodes@example.com" not in text and client.session_id not in text and json.dumps(DEVICE) not in text

"""The metrics move as traffic flows through a live Daphne server (docs/operations.md): sign-ins and refreshes, an agent
socket, a session handshake, encrypted frames both ways, event streams, webhooks through a real tunnel, and rate
limits. And: no label ever carries a route token, a path with one, an email or a body."""

from __future__ import annotations

import asyncio
import json
import uuid
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import websockets

from tests.e2ee import AgentSide, ClientSide
from tests.helpers import daphne_server
from tests.live_session import Events, agent_loop, handshake
from tests.metrics_helpers import Exposition, missing_samples, parse
from tests.oauth_helpers import CALLBACK, pkce_pair

DEVICE = "dev_metrics_" + uuid.uuid4().hex
EMAIL = "metrics-owner@example.com"
NODE = "metrics-live-node"
ROUTE_LIMIT = 3


@pytest.fixture(scope="module")
def gateway():
    with daphne_server(
        NODE_ID=NODE, INGRESS_ROUTE_LIMIT_PER_WINDOW=str(ROUTE_LIMIT), INGRESS_RATE_WINDOW_SECONDS="3600"
    ) as server:
        yield server


async def scrape(http: httpx.AsyncClient) -> Exposition:
    response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse(response.text)


async def until(http: httpx.AsyncClient, check, timeout: float = 10.0) -> Exposition:
    """Scrape until `check(exposition)` holds (bounded)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        exposition = await scrape(http)
        if check(exposition):
            return exposition
        assert asyncio.get_running_loop().time() < deadline, "the metrics did not get there"
        await asyncio.sleep(0.05)


async def sign_in(http: httpx.AsyncClient) -> dict[str, str]:
    """The demo sign-in and the code exchange (grant_type=authorization_code); returns the token response."""
    verifier, challenge = pkce_pair()
    answer = await http.post(
        "/oauth/authorize",
        data={
            "response_type": "code",
            "client_id": "commands-agent",
            "redirect_uri": CALLBACK,
            "scope": "profile email device offline_access",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "demo_email": EMAIL,
        },
    )
    code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
    tokens = await http.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CALLBACK,
            "client_id": "commands-agent",
            "code_verifier": verifier,
        },
    )
    assert tokens.status_code == 200, tokens.text
    return dict(tokens.json())


async def tunnel_echo(ws) -> None:
    async for text in ws:
        frame = json.loads(text)
        if frame.get("type") == "tunnel.request":
            await ws.send(
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


async def test_the_metrics_move_as_traffic_flows(gateway):
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=15) as http:
        start = await scrape(http)
        assert start.nodes() == {NODE}
        assert start.get("gateway_agents_connected") == 0

        # OAuth: a code exchange, then a refresh.
        tokens = await sign_in(http)
        refreshed = await http.post(
            "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        )
        assert refreshed.status_code == 200
        owner = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}
        oauth = await scrape(http)
        for grant in ("authorization_code", "refresh_token"):
            assert oauth.get("gateway_oauth_tokens_issued_total", grant_type=grant) == 1

        # An agent socket: the gauge follows it.
        keys = AgentSide.new()
        key_body = {"algorithm": "ed25519", "public_key": keys.identity_b64}
        assert (
            await http.put(f"/gateway/v1/devices/{DEVICE}/identity-key", json=key_body, headers=owner)
        ).status_code == 204
        ws = await websockets.connect(
            f"ws://127.0.0.1:{gateway.port}/gateway/v1/agent/connect?device_id={DEVICE}",
            additional_headers={**owner, "X-Device-Id": DEVICE},
        )
        agent = asyncio.ensure_future(agent_loop(ws, keys, {"http": http, "headers": owner}))
        devices_stream = None
        try:
            await until(http, lambda e: e.get("gateway_agents_connected") == 1)

            # A session: one handshake accepted (the agent acks over HTTP, then repeats it on its socket).
            client = ClientSide.new(str(uuid.uuid4()), str(uuid.uuid4()), DEVICE)
            await handshake(http, owner, client, keys)
            events = Events(http, client.session_id, owner)
            await events.start()
            await events.next()
            await events.next()  # both acks reached the stream
            opened = asyncio.Event()

            async def follow_devices() -> None:
                async with http.stream("GET", "/gateway/v1/devices/events", headers=owner) as response:
                    opened.set()
                    async for _ in response.aiter_bytes():
                        pass

            devices_stream = asyncio.ensure_future(follow_devices())
            await asyncio.wait_for(opened.wait(), timeout=10)
            before = await until(
                http,
                lambda e: (
                    e.get("gateway_sse_streams_open", kind="session") == 1
                    and e.get("gateway_sse_streams_open", kind="devices") == 1
                ),
            )
            assert before.get("gateway_handshakes_total", result="ok") == 1
            assert before.get("gateway_handshakes_total", result="failed") == 0
            assert before.get("gateway_sessions_live") == 1

            # One client frame in, two agent frames out.
            body = json.dumps(client.message("count me", "msg_1")).encode()
            posted = await http.post(
                f"/gateway/v1/sessions/{client.session_id}/messages",
                content=body,
                headers={**owner, "Content-Type": "application/json"},
            )
            assert posted.status_code == 202
            replies = [await events.next(), await events.next()]
            after = await until(
                http,
                lambda e: (
                    e.get("gateway_relay_frames_total", direction="agent_to_client")
                    >= before.get("gateway_relay_frames_total", direction="agent_to_client") + 2
                ),
            )

            def moved(name: str, **labels: str) -> float:
                return after.get(name, **labels) - before.get(name, **labels)

            assert moved("gateway_relay_frames_total", direction="client_to_agent") == 1
            assert moved("gateway_relay_bytes_total", direction="client_to_agent") == len(body)
            assert moved("gateway_relay_latency_seconds_count", direction="client_to_agent") == 1
            assert moved("gateway_relay_frames_total", direction="agent_to_client") == 2
            assert moved("gateway_relay_bytes_total", direction="agent_to_client") == sum(
                len(json.dumps(data, separators=(",", ":"), ensure_ascii=False)) for _, _, data in replies
            )
            assert moved("gateway_relay_latency_seconds_count", direction="agent_to_client") == 2
            assert moved("gateway_relay_latency_seconds_bucket", direction="agent_to_client", le="+Inf") == 2
            assert moved("gateway_http_requests_total", method="POST", code="202") == 1

            # A forged ack fails, and counts as such.
            forged = {
                "device_id": DEVICE,
                "handshake_id": client.handshake_id,
                "agent_ephemeral_public_key": keys.identity_b64,
                "agent_identity_signature": "AAAA",
                "transcript_hash": "AAAA",
            }
            refused = await http.post(
                f"/gateway/v1/sessions/{client.session_id}/handshake/agent-ack", json=forged, headers=owner
            )
            assert refused.status_code in (400, 401)
            failed = await scrape(http)
            assert failed.get("gateway_handshakes_total", result="failed") == 1
            assert failed.get("gateway_handshakes_total", result="ok") == 1

            await events.stop()
            devices_stream.cancel()
            await until(
                http,
                lambda e: (
                    e.get("gateway_sse_streams_open", kind="session") == 0
                    and e.get("gateway_sse_streams_open", kind="devices") == 0
                ),
            )
        finally:
            if devices_stream is not None:
                devices_stream.cancel()
            agent.cancel()
            await ws.close()
        await until(http, lambda e: e.get("gateway_agents_connected") == 0)

        # Webhooks through a real tunnel: by status code, with their duration; then the per-route limit.
        created = await http.post(
            "/gateway/v1/integrations/routes", json={"device_id": DEVICE, "interface_type": "http"}, headers=owner
        )
        assert created.status_code == 201, created.text
        route_id, route_token = created.json()["route"]["route_id"], created.json()["route_token"]
        path = f"/integrations/{route_id}/{route_token}"
        assert (await http.post(path, content=b"no tunnel yet")).status_code == 503
        tunnel = await websockets.connect(
            f"ws://127.0.0.1:{gateway.port}/gateway/v1/integrations/tunnel/connect?device_id={DEVICE}",
            additional_headers=owner,
        )
        assert json.loads(await tunnel.recv())["type"] == "tunnel.connected"
        await tunnel.send(json.dumps({"type": "tunnel.activate", "request_id": "act-1", "routes": [route_id]}))
        assert json.loads(await tunnel.recv())["results"][0]["status"] == "active"
        echo = asyncio.ensure_future(tunnel_echo(tunnel))
        try:
            await until(http, lambda e: e.get("gateway_tunnels_connected") == 1)
            answers = [(await http.post(path, content=b"secret body text")).status_code for _ in range(ROUTE_LIMIT)]
            assert answers == [201] * (ROUTE_LIMIT - 1) + [429]  # the 503 above spent one of the route's budget
        finally:
            echo.cancel()
            await tunnel.close()
        webhooks = await until(http, lambda e: e.get("gateway_tunnels_connected") == 0)
        assert webhooks.get("gateway_ingress_requests_total", code="201") == ROUTE_LIMIT - 1
        assert webhooks.get("gateway_ingress_requests_total", code="503") == 1
        assert webhooks.get("gateway_ingress_requests_total", code="429") == 1
        assert webhooks.get("gateway_ingress_duration_seconds_count") == ROUTE_LIMIT + 1
        assert webhooks.get("gateway_rate_limited_total", scope="route") == 1

        # The OAuth limit: 30 requests per window per address, then 429.
        spent = 3  # authorize, token, refresh
        statuses = [
            (await http.post("/oauth/token", data={"grant_type": "refresh_token", "refresh_token": "x"})).status_code
            for _ in range(31 - spent)
        ]
        assert statuses[-1] == 429 and statuses.count(429) == 1
        final = await scrape(http)
        assert final.get("gateway_rate_limited_total", scope="oauth") == 1
        assert missing_samples(final) == {}

        # No label value carries a token, a path with one, an email or a body.
        for secret in (route_token, path, EMAIL, "secret body text", tokens["refresh_token"], client.session_id):
            assert secret not in final.text
        assert {labels.get("method") for _, labels, _ in final.samples} <= {None, "GET", "POST", "PUT", "HEAD"}


async def test_a_metrics_token_guards_the_endpoint_on_a_live_server():
    token = "live-metrics-token-0123456789"
    with daphne_server(METRICS_TOKEN=token) as server, httpx.Client(base_url=server.base_url, timeout=10) as http:
        assert http.get("/metrics").status_code == 401
        assert http.get("/metrics", headers={"Authorization": "Bearer not-the-token-0000"}).status_code == 401
        good = http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert good.status_code == 200 and "gateway_relay_frames_total" in good.text
        assert token not in good.text


async def test_with_metrics_off_the_endpoint_is_a_404_and_the_gateway_serves_as_before():
    with daphne_server(METRICS_ENABLED="false") as server, httpx.Client(base_url=server.base_url, timeout=10) as http:
        off = http.get("/metrics")
        assert (off.status_code, off.json()) == (404, {"error": "Not Found", "code": 404})
        assert http.get("/healthz").status_code == 200

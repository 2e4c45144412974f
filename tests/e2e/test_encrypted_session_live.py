"""An end-to-end encrypted session against a live Daphne server (docs/protocol/relay.md, docs/protocol/e2ee.md): a
Python agent simulator and a Python client simulator (both with `cryptography`) complete a handshake, exchange encrypted
messages in both directions, drop and resume the event stream with Last-Event-ID, see a replayed seq refused, and a
grantee's stream ends when the owner revokes."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
import websockets

from tests.e2ee import AgentSide, ClientSide, open_frame
from tests.helpers import daphne_server
from tests.live_session import Events, agent_loop, handshake, sign_in

DEVICE = "dev_e2e_" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def gateway():
    with daphne_server() as server:
        yield server


async def test_encrypted_session_end_to_end(gateway):
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        owner = await sign_in(http, "owner@example.com", "read_assets write_assets offline_access device")
        bob = await sign_in(http, "bob@example.com", "profile email")
        keys = AgentSide.new()
        assert (
            await http.put(
                f"/gateway/v1/devices/{DEVICE}/identity-key",
                json={"algorithm": "ed25519", "public_key": keys.identity_b64},
                headers=owner,
            )
        ).status_code == 204
        ws = await websockets.connect(
            f"ws://127.0.0.1:{gateway.port}/gateway/v1/agent/connect?device_id={DEVICE}",
            additional_headers={**owner, "X-Device-Id": DEVICE},
        )
        agent = asyncio.ensure_future(agent_loop(ws, keys, {"http": http, "headers": owner}))
        try:
            # The owner's session: both directions, encrypted end to end.
            client = ClientSide.new(str(uuid.uuid4()), str(uuid.uuid4()), DEVICE)
            await handshake(http, owner, client, keys)
            events = Events(http, client.session_id, owner)
            await events.start()
            acks = [await events.next(), await events.next()]
            assert [e[2]["type"] for e in acks] == ["session.handshake.ack"] * 2

            sent = client.message("first prompt", "msg_1")
            response = await http.post(
                f"/gateway/v1/sessions/{client.session_id}/messages",
                json=sent,
                headers={**owner, "X-Idempotency-Key": "idem_1"},
            )
            assert response.status_code == 202
            progress, result = await events.next(), await events.next()
            assert json.loads(open_frame(client.a2c, progress[2], "agent_to_client", 1))["status"] == "running"
            assert json.loads(open_frame(client.a2c, result[2], "agent_to_client", 2))["result"] == "echo: first prompt"

            # A replayed seq is refused before it reaches the agent.
            replay = await http.post(
                f"/gateway/v1/sessions/{client.session_id}/messages",
                json=sent,
                headers={**owner, "X-Idempotency-Key": "idem_2"},
            )
            assert (replay.status_code, replay.json()["error"]) == (409, "replay_detected")

            # Drop the stream, miss two events, resume with Last-Event-ID: exactly the missed ones come back.
            last_seen = result[0]
            await events.stop()
            second = client.message("second prompt", "msg_2")
            assert (
                await http.post(f"/gateway/v1/sessions/{client.session_id}/messages", json=second, headers=owner)
            ).status_code == 202
            # Whether the agent's answers land before or after the resume, the stream delivers each once.
            resumed = Events(http, client.session_id, {**owner, "Last-Event-ID": last_seen})
            await resumed.start()
            missed = [await resumed.next(), await resumed.next()]
            assert [int(e[0]) > int(last_seen) for e in missed] == [True, True]
            assert json.loads(open_frame(client.a2c, missed[0][2], "agent_to_client", 3))["status"] == "running"
            assert (
                json.loads(open_frame(client.a2c, missed[1][2], "agent_to_client", 4))["result"]
                == "echo: second prompt"
            )
            assert resumed.queue.empty()
            await resumed.stop()

            # A grantee's stream ends with session.ended when the owner revokes.
            created = await http.post(
                "/gateway/v1/shares/invites", json={"deviceId": DEVICE, "email": "bob@example.com"}, headers=owner
            )
            token = created.json()["inviteUrl"].rsplit("/", 1)[1]
            grant_id = (
                await http.post("/gateway/v1/shares/invites/accept", json={"token": token}, headers=bob)
            ).json()["grantId"]
            shared = ClientSide.new(str(uuid.uuid4()), str(uuid.uuid4()), DEVICE)
            await handshake(http, bob, shared, keys)
            bob_events = Events(http, shared.session_id, bob)
            await bob_events.start()
            await bob_events.next()
            await bob_events.next()
            msg = shared.message("from bob", "msg_b1")
            assert (
                await http.post(f"/gateway/v1/sessions/{shared.session_id}/messages", json=msg, headers=bob)
            ).status_code == 202
            assert (
                json.loads(open_frame(shared.a2c, (await bob_events.next())[2], "agent_to_client", 1))["status"]
                == "running"
            )
            await bob_events.next()
            assert (await http.post(f"/gateway/v1/shares/grants/{grant_id}/revoke", headers=owner)).status_code == 200
            ended = await bob_events.next()
            assert ended[1] == "session.ended"
            assert ended[2] == {"type": "session.ended", "session_id": shared.session_id, "reason": "grant_revoked"}
            await asyncio.wait_for(bob_events.ended.wait(), timeout=10)
            again = await http.get(
                f"/gateway/v1/sessions/{shared.session_id}/handshake/{shared.handshake_id}", headers=bob
            )
            assert again.status_code == 403
        finally:
            agent.cancel()
            await ws.close()

"""Agent frames up to the contract's 4 MiB relay under the production commands of both servers (Daphne's own limit
is 1 MiB unless raised, as the Procfile does); a bigger one closes the socket with 1009 (message too big)."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
import websockets

from relay.agent_socket import MAX_FRAME_BYTES
from tests.e2ee import AgentSide, ClientSide
from tests.helpers import procfile_server, uvicorn_server
from tests.live_session import Events, agent_loop, handshake
from tests.oauth_helpers import live_sign_in


def frame_of_size(keys: AgentSide, session_id: str, low: int, high: int) -> str:
    """An encrypted agent frame whose JSON text is between `low` and `high` bytes."""
    size = low * 3 // 4
    for _ in range(50):
        text = json.dumps(keys.reply(session_id, "session.progress", "big", {"blob": "x" * size}))
        if low <= len(text) <= high:
            return text
        size += (low + high) // 2 - len(text)
        keys.sessions[session_id]["send"] -= 1  # that attempt was not sent: reuse its seq
    raise AssertionError("could not size the frame")


@pytest.mark.parametrize("serve", [procfile_server, uvicorn_server], ids=["procfile-daphne", "uvicorn"])
async def test_frames_up_to_4_mib_relay_and_bigger_ones_close_with_1009(serve):
    device = "dev_frames_" + uuid.uuid4().hex[:12]
    with serve() as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            owner = {"Authorization": f"Bearer {await live_sign_in(http, 'owner@example.com', 'device')}"}
            keys = AgentSide.new()
            key = {"algorithm": "ed25519", "public_key": keys.identity_b64}
            assert (
                await http.put(f"/gateway/v1/devices/{device}/identity-key", json=key, headers=owner)
            ).status_code == 204
            url = f"ws://127.0.0.1:{server.port}/gateway/v1/agent/connect?device_id={device}"
            ws = await websockets.connect(url, additional_headers=owner, max_size=None)
            agent = asyncio.ensure_future(agent_loop(ws, keys, {"http": http, "headers": owner}))
            client = ClientSide.new(str(uuid.uuid4()), str(uuid.uuid4()), device)
            await handshake(http, owner, client, keys)
            events = Events(http, client.session_id, owner)
            await events.start()
            for _ in range(2):
                await events.next()  # the handshake acks
            agent.cancel()
            big = frame_of_size(keys, client.session_id, MAX_FRAME_BYTES - 65536, MAX_FRAME_BYTES)
            await ws.send(big)
            event = await events.next()
            assert event[1] == "session.event" and event[2]["seq"] == json.loads(big)["seq"]
            await ws.send(frame_of_size(keys, client.session_id, MAX_FRAME_BYTES + 1, MAX_FRAME_BYTES + 65536))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
            await events.stop()

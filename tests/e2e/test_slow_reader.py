"""A reader that never reads its session event stream is cut at STREAM_BUFFER_BYTES under Daphne as well as uvicorn
(decisions.md H3), while the agent, the gateway and other readers carry on."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid

import httpx
import pytest
import websockets

from tests.e2ee import AgentSide, ClientSide
from tests.helpers import daphne_server, uvicorn_server, wait_for
from tests.live_session import Events, agent_loop, handshake
from tests.oauth_helpers import live_sign_in

BUDGET = 256 * 1024
FRAME_PLAINTEXT = 200_000


def stalled_reader(port: int, path: str, token: str) -> socket.socket:
    """Open the stream, read the response head, then never read again (a tiny receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n"
    sock.sendall(request.encode())
    sock.settimeout(10)
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 200"), head
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """Drain what is left; True once the server has closed or reset the connection."""
    try:
        while chunk := sock.recv(1 << 20):
            del chunk
    except (ConnectionResetError, TimeoutError):
        return True
    return True


@pytest.mark.parametrize("serve", [daphne_server, uvicorn_server], ids=["daphne", "uvicorn"])
async def test_a_stalled_reader_is_cut_at_its_byte_budget(serve):
    device = "dev_slow_" + uuid.uuid4().hex[:12]
    with serve(STREAM_BUFFER_BYTES=str(BUDGET)) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=15) as http:
            token = await live_sign_in(http, "owner@example.com", "profile email device")
            owner = {"Authorization": f"Bearer {token}"}
            keys = AgentSide.new()
            put = await http.put(
                f"/gateway/v1/devices/{device}/identity-key",
                json={"algorithm": "ed25519", "public_key": keys.identity_b64},
                headers=owner,
            )
            assert put.status_code == 204
            ws = await websockets.connect(
                f"ws://127.0.0.1:{server.port}/gateway/v1/agent/connect?device_id={device}",
                additional_headers=owner,
                max_size=None,
            )
            agent = asyncio.ensure_future(agent_loop(ws, keys, {"http": http, "headers": owner}))
            try:
                client = ClientSide.new(str(uuid.uuid4()), str(uuid.uuid4()), device)
                await handshake(http, owner, client, keys)
                path = f"/gateway/v1/sessions/{client.session_id}/events"
                stalled = await asyncio.to_thread(stalled_reader, server.port, path, token)
                healthy = Events(http, client.session_id, owner)
                await healthy.start()
                for _ in range(2):
                    await healthy.next()  # the two handshake acks of the backlog

                blob = "x" * FRAME_PLAINTEXT
                for _ in range(60):  # about 16 MiB, far past what the stalled reader may hold
                    await ws.send(json.dumps(keys.reply(client.session_id, "session.progress", "m1", {"blob": blob})))
                    await healthy.next()  # the healthy reader keeps up and gets every frame

                await asyncio.to_thread(wait_for, lambda: "slow stream reader cut" in server.log(), 30)
                assert await asyncio.to_thread(closed_by_server, stalled)
                stalled.close()
                assert (await http.get("/healthz")).status_code == 200
                await ws.send(json.dumps(keys.reply(client.session_id, "session.progress", "m2", {"after": True})))
                assert (await healthy.next())[1] == "session.event"  # the agent and other readers carry on
                await healthy.stop()
            finally:
                agent.cancel()
                await ws.close()
        assert server.log().count("slow stream reader cut") == 1

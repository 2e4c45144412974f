"""`/readyz` says why it is not ready (database, migrations, shutdown), and SIGTERM drains a real server process:
not ready, agent and tunnel sockets closed with 1012, SSE streams ended, exit within a bounded time."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import httpx
import pytest
import websockets

from gateway_site.lifecycle import lifecycle
from tests.helpers import clean_env, daphne_server, run_manage, uvicorn_server, wait_for
from tests.relay_helpers import KEY_B64

DRAIN_SECONDS = 3


def readyz(base_url: str) -> tuple[int, dict]:
    response = httpx.get(base_url + "/readyz", timeout=5)
    return response.status_code, response.json()


@pytest.mark.django_db
def test_ready_when_the_database_answers_and_is_migrated(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ready" and "reason" not in response.json()


@pytest.mark.django_db
def test_not_ready_while_shutting_down(client, monkeypatch):
    monkeypatch.setattr(lifecycle, "shutting_down", True)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response["Content-Type"].startswith("application/json")
    assert (response.json()["status"], response.json()["reason"]) == ("not_ready", "shutting down")


def test_not_ready_until_migrations_are_applied(tmp_path):
    database = f"sqlite:///{tmp_path / 'gateway.sqlite3'}"
    with daphne_server(DATABASE_URL=database) as server:
        status, body = readyz(server.base_url)
        assert status == 503 and body["status"] == "not_ready"
        assert body["reason"].endswith("unapplied migration(s): run manage.py migrate")
        assert int(body["reason"].split()[0]) > 0
        migrated = run_manage("migrate", "-v", "0", env=clean_env(DATABASE_URL=database))
        assert migrated.returncode == 0, migrated.stderr
        status, body = readyz(server.base_url)
        assert (status, body["status"], body["state_backend"]) == (200, "ready", "memory")


def test_not_ready_when_the_database_cannot_be_opened(tmp_path):
    with daphne_server(DATABASE_URL=f"sqlite:///{tmp_path / 'missing-dir' / 'gateway.sqlite3'}") as server:
        status, body = readyz(server.base_url)
        assert (status, body["status"], body["reason"]) == (503, "not_ready", "database unavailable: OperationalError")


async def _connect_everything(base_url: str, port: int) -> tuple[dict, object, object, httpx.AsyncClient, object]:
    http = httpx.AsyncClient(base_url=base_url, timeout=15)
    token = (
        await http.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "shutdown-test"})
    ).json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    device = "dev_shutdown_test_1"
    put = await http.put(
        f"/gateway/v1/devices/{device}/identity-key",
        json={"algorithm": "ed25519", "public_key": KEY_B64},
        headers=bearer,
    )
    assert put.status_code == 204, put.text
    agent = await websockets.connect(
        f"ws://127.0.0.1:{port}/gateway/v1/agent/connect?device_id={device}", additional_headers=bearer
    )
    assert json.loads(await agent.recv())["type"] == "gateway.connected"
    tunnel = await websockets.connect(
        f"ws://127.0.0.1:{port}/gateway/v1/integrations/tunnel/connect?device_id={device}", additional_headers=bearer
    )
    assert json.loads(await tunnel.recv())["type"] == "tunnel.connected"
    return bearer, agent, tunnel, http, device


async def _close_code(ws) -> int:
    try:
        while True:
            await ws.recv()
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else -1


async def _stream_end(http: httpx.AsyncClient, bearer: dict, opened: asyncio.Event) -> bytes:
    seen = b""
    async with http.stream("GET", "/gateway/v1/devices/events", headers=bearer) as response:
        assert response.status_code == 200
        async for chunk in response.aiter_bytes():
            seen += chunk
            opened.set()
    return seen


@pytest.mark.parametrize("serve", [daphne_server, uvicorn_server], ids=["daphne", "uvicorn"])
async def test_sigterm_drains_sockets_and_streams_then_exits(serve):
    with serve(SHUTDOWN_DRAIN_SECONDS=str(DRAIN_SECONDS)) as server:
        bearer, agent, tunnel, http, device = await _connect_everything(server.base_url, server.port)
        opened = asyncio.Event()
        stream = asyncio.ensure_future(_stream_end(http, bearer, opened))
        await asyncio.wait_for(opened.wait(), 10)
        agent_closed = asyncio.ensure_future(_close_code(agent))
        tunnel_closed = asyncio.ensure_future(_close_code(tunnel))

        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        # Sockets get 1012 (service restart) and the stream ends, while the process is still up and not ready.
        assert await asyncio.wait_for(agent_closed, 10) == 1012
        assert await asyncio.wait_for(tunnel_closed, 10) == 1012
        assert (await asyncio.wait_for(stream, 10)).startswith(b":connected")  # then the server ended it
        status, body = await asyncio.to_thread(readyz, server.base_url)
        assert (status, body["status"], body["reason"]) == (503, "not_ready", "shutting down")
        # A new agent socket is refused while the process drains.
        with pytest.raises(websockets.InvalidStatus):
            await websockets.connect(
                f"ws://127.0.0.1:{server.port}/gateway/v1/agent/connect?device_id={device}",
                additional_headers=bearer,
            )
        await http.aclose()
        await asyncio.to_thread(wait_for, lambda: server.process.poll() is not None, DRAIN_SECONDS + 15)
        assert time.monotonic() - signalled >= DRAIN_SECONDS
        log = server.log()
    assert "shutdown: closing live connections" in log and "connections=3" in log
    assert "shutdown: handing over to the server" in log and "remaining=0" in log

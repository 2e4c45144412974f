"""The application on the Redis stores (presence, key/value stores, leases; docs/scaling.md), in process, against a
real Redis server (tests/redis_server.py). A second handle on the same Redis keys stands for another gateway process:
what it holds counts here, and what this process writes, it sees."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid

import pytest
from asgiref.sync import sync_to_async

from gateway_site.asgi import application
from gateway_site.redis_stores import RedisKeyValueStore, RedisLeases
from relay import services as relay_services
from relay.redis_presence import RedisPresenceStore
from tests.helpers import ROOT, clean_env
from tests.relay_helpers import AgentSocket, Stream, auth, bearer, register, token_for
from tests.state_mode import forget_configured_state
from tests.tunnels.test_tunnel_and_ingress import DEVICE as TUNNEL_DEVICE
from tests.tunnels.test_tunnel_and_ingress import answering, live_route

pytestmark = pytest.mark.django_db(transaction=True)
OWNER = token_for("owner-1", email="owner@example.com")
DEVICE = "dev_redis_mode1"
SPACE = {"url": "", "prefix": ""}  # this test's Redis and key space, read by the classes below


class PresenceInRedis(RedisPresenceStore):
    def __init__(self) -> None:
        super().__init__(SPACE["url"], prefix=SPACE["prefix"])


class LeasesInRedis(RedisLeases):
    def __init__(self) -> None:
        super().__init__(SPACE["url"], prefix=SPACE["prefix"])


class KeyValueInRedis(RedisKeyValueStore):
    def __init__(self, name: str, *, ttl: float, max_entries: int) -> None:
        super().__init__(name, ttl=ttl, url=SPACE["url"], prefix=SPACE["prefix"])


@pytest.fixture
def other(redis_url, settings):
    """Select the Redis stores (in a key space of this test's own); returns another process's handles on them."""
    SPACE.update(url=redis_url, prefix=f"test:{uuid.uuid4().hex}:")
    settings.GATEWAY_PRESENCE_STORE = f"{__name__}.PresenceInRedis"
    settings.GATEWAY_LEASES = f"{__name__}.LeasesInRedis"
    settings.GATEWAY_KEY_VALUE_STORE = f"{__name__}.KeyValueInRedis"
    forget_configured_state()
    yield PresenceInRedis(), LeasesInRedis()
    forget_configured_state()


STORE_SETTINGS = ("GATEWAY_SESSION_STORE", "GATEWAY_PRESENCE_STORE", "GATEWAY_KEY_VALUE_STORE", "GATEWAY_LEASES")


def configured_stores(**env: str) -> list[str]:
    names = ", ".join(f"settings.{name}" for name in STORE_SETTINGS)
    code = f"import json; from django.conf import settings; print(json.dumps([{names}]))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=clean_env(DJANGO_SETTINGS_MODULE="gateway_site.settings", **env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def test_the_state_backend_picks_every_store(tmp_path):
    assert configured_stores() == [
        "relay.session_store.MemorySessionStore",
        "relay.stores.MemoryPresenceStore",
        "gateway_site.kvstore.MemoryKeyValueStore",
        "gateway_site.leases.MemoryLeases",
    ]
    shared = {
        "STATE_BACKEND": "redis",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "PUBLIC_BASE_URL": "https://gw.example.com",
    }
    assert configured_stores(DATABASE_URL=f"sqlite:///{tmp_path}/gw.sqlite3", **shared) == [
        "relay.redis_session_store.RedisSessionStore",
        "relay.redis_presence.RedisPresenceStore",
        "gateway_site.redis_stores.RedisKeyValueStore",
        "gateway_site.redis_stores.RedisLeases",
    ]


async def devices(http_get) -> dict[str, str]:
    response = await http_get("/gateway/v1/devices", **auth(OWNER))
    return {d["device_id"]: d["status"] for d in response.json()["devices"]}


async def test_presence_is_shared_with_every_process(other, client):
    presence, _ = other
    await sync_to_async(register)(DEVICE, "owner-1")
    await sync_to_async(register)("dev_elsewhere", "owner-1")
    socket = AgentSocket(application, OWNER, DEVICE)
    await socket.open()
    held = await presence.get(DEVICE)
    assert held is not None and held.connection_id.startswith("agt:") and held.online()
    from django.conf import settings

    assert held.node_id == settings.GATEWAY.node_id  # cross-process delivery will find the socket's process by it
    await presence.mark_online("dev_elsewhere", "agt:b1", "node-b")  # an agent connected to another process
    assert await devices(sync_to_async(client.get)) == {DEVICE: "online", "dev_elsewhere": "online"}
    await socket.close()
    assert await presence.get(DEVICE) is None
    assert await devices(sync_to_async(client.get)) == {DEVICE: "offline", "dev_elsewhere": "online"}


async def test_agent_sockets_per_owner_count_across_processes(other, client, monkeypatch):
    _, leases = other
    monkeypatch.setattr(relay_services, "MAX_AGENT_SOCKETS_PER_OWNER", 2)
    await sync_to_async(register)(DEVICE, "owner-1")
    for device in ("dev_b_1", "dev_b_2"):  # two sockets of the owner on another process
        assert await leases.acquire("agent-sockets:owner-1", 2, device, 60)
    refused = AgentSocket(application, OWNER, DEVICE)
    assert not await refused.connect()
    assert refused.denial == (429, {"error": "too many agent connections"})
    plain = await sync_to_async(client.get)(f"/gateway/v1/agent/connect?device_id={DEVICE}", **auth(OWNER))
    assert (plain.status_code, plain.json()) == (429, {"error": "too many agent connections"})
    await leases.release("agent-sockets:owner-1", "dev_b_2")  # that socket closed
    socket = AgentSocket(application, OWNER, DEVICE)
    await socket.open()
    assert await leases.holders("agent-sockets:owner-1") == ["dev_b_1", DEVICE]
    await socket.close()
    assert await leases.holders("agent-sockets:owner-1") == ["dev_b_1"]


async def test_streams_per_user_count_across_processes(other, configure):
    _, leases = other
    await sync_to_async(configure)(max_streams_per_user=2)
    assert await leases.acquire("streams:owner-1", 2, "stream-on-b", 90)
    first = Stream(application, "/gateway/v1/devices/events", OWNER)
    assert await first.open() == 200
    second = Stream(application, "/gateway/v1/devices/events", OWNER)
    assert await second.open() == 429
    assert len(await leases.holders("streams:owner-1")) == 2
    await first.read_until(b":connected")
    await first.close()

    async def released() -> bool:
        return await leases.holders("streams:owner-1") == ["stream-on-b"]

    deadline = asyncio.get_running_loop().time() + 5
    while not await released():
        assert asyncio.get_running_loop().time() < deadline, "the stream's lease was not released"
        await asyncio.sleep(0.05)


async def test_webhooks_in_flight_count_across_processes_and_snapshots_are_shared(other, configure):
    _, leases = other
    await sync_to_async(register)(TUNNEL_DEVICE, "owner-1")
    await sync_to_async(configure)(max_inflight_per_route=1)
    from tests.relay_helpers import http_client

    async with http_client(application) as http:
        created, socket, path = await live_route(http)
        route_id = created["route"]["route_id"]
        assert await leases.acquire(f"inflight-route:{route_id}", 1, "req_on_b", 30)  # waiting on another process
        refused = await http.post(path, content=b"a")
        assert (refused.status_code, refused.json()) == (429, {"error": "too many webhooks in flight for this route"})
        snapshots = RedisKeyValueStore("route-snapshots", ttl=5, url=SPACE["url"], prefix=SPACE["prefix"])
        assert (await snapshots.get(route_id))["status"] == "active"  # every process reads the same snapshot

        await leases.release(f"inflight-route:{route_id}", "req_on_b")
        reply = asyncio.ensure_future(answering(socket, status=200, body=b"ok"))
        assert (await http.post(path, content=b"a")).status_code == 200
        await reply
        assert await leases.holders(f"inflight-route:{route_id}") == []
        assert await leases.holders("inflight-owner:owner-1") == []

        rotated = await http.post(f"/gateway/v1/integrations/routes/{route_id}/rotate-token", headers=bearer(OWNER))
        assert rotated.status_code == 200
        assert await snapshots.get(route_id) is None  # the change dropped the shared snapshot for every process
        await socket.close()

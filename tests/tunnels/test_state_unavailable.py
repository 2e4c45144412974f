"""The tunnel edges when the shared state is down (docs/scaling.md "When Redis is down"): a call that fails with
redis-py's ConnectionError (injected here at the steps that reach shared state across processes) gives
`503 {"error":"state_unavailable"}` before the upgrade, a close with 1013 after it (the routes go back to
`provisioned`), and a JSON 503 at webhook ingress that gives its in-flight slot back. Nothing is logged as a
failure."""

from __future__ import annotations

import logging

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway_site import outage
from gateway_site.asgi import application
from tests.relay_helpers import TunnelSocket
from tests.tunnels.test_tunnel_and_ingress import DEVICE, OWNER, activate, live_route, new_route, status_of
from tunnels import consumers as tunnel_consumers
from tunnels import delivery as tunnel_delivery
from tunnels import services as tunnel_services
from tunnels.registry import inflight, tunnels

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # These put one store on a Redis server of the test's own and stop it; in Redis mode the run's other stores and
    # channel layer would stay on the shared server. tests/scaleout/test_redis_outage.py covers a full Redis outage.
    pytest.mark.memory_only("stops a Redis server of its own under part of the state"),
]
STATE_UNAVAILABLE = {"error": "state_unavailable"}


def redis_down(*args, **kwargs):
    raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


@pytest.fixture(autouse=True)
def nothing_logged_as_failure(caplog):
    caplog.set_level(logging.INFO)
    yield
    outage.outage.ended()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_tunnel_refused_while_redis_is_down_gets_503_state_unavailable(setup, monkeypatch):
    monkeypatch.setattr(tunnel_consumers, "tunnel_admit", redis_down)
    tunnel = TunnelSocket(application, OWNER, DEVICE)
    assert not await tunnel.connect()
    assert tunnel.denial == (503, STATE_UNAVAILABLE)


async def test_a_tunnel_frame_while_redis_is_down_closes_with_1013_and_frees_its_routes(setup, monkeypatch):
    route_id = (await new_route(setup))["route"]["route_id"]
    tunnel = TunnelSocket(application, OWNER, DEVICE)
    await tunnel.open()
    assert (await activate(tunnel, route_id))["results"][0]["status"] == "active"
    monkeypatch.setattr(tunnel_services, "activation_check", redis_down)
    await tunnel.send({"type": "tunnel.activate", "request_id": "again", "routes": [route_id]})
    closed = await tunnel.recv_raw()
    assert (closed["type"], closed["code"]) == ("websocket.close", 1013)
    assert tunnels.count_for_owner("owner-1") == 0
    assert await status_of(route_id) == "provisioned"
    await tunnel.close()


async def test_a_webhook_while_redis_is_down_is_a_sandboxed_json_503_and_frees_its_slot(setup, monkeypatch):
    created, tunnel, path = await live_route(setup)
    monkeypatch.setattr(tunnel_delivery, "send_request", redis_down)
    answer = await setup.post(path, content=b"hello")
    assert (answer.status_code, answer.json()) == (503, STATE_UNAVAILABLE)
    assert answer.headers["content-security-policy"] == "sandbox; default-src 'none'"
    assert inflight.count_for_route(created["route"]["route_id"]) == 0
    await tunnel.close()

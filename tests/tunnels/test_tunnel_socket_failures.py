"""gateway_site.contained on the tunnel socket: before the upgrade an unexpected failure is `500
{"error":"internal_error"}` (docs/protocol/tunnels.md §3.1); after it the socket closes with 1011 and its routes go
back to `provisioned`."""

from __future__ import annotations

import pytest

from gateway_site.asgi import application
from tests.relay_helpers import TunnelSocket
from tests.tunnels.test_tunnel_and_ingress import DEVICE, OWNER, activate, new_route, status_of
from tunnels import consumers as tunnel_consumers
from tunnels import services as tunnel_services
from tunnels.registry import tunnels

pytestmark = pytest.mark.django_db(transaction=True)


def boom(*args, **kwargs):
    raise RuntimeError("injected failure")


async def closed_with(socket) -> int:
    message = await socket.recv_raw()
    assert message["type"] == "websocket.close", message
    return message["code"]


async def test_a_failing_tunnel_frame_closes_with_1011_and_frees_its_routes(setup, monkeypatch):
    route_id = (await new_route(setup))["route"]["route_id"]
    tunnel = TunnelSocket(application, OWNER, DEVICE)
    await tunnel.open()
    assert (await activate(tunnel, route_id))["results"][0]["status"] == "active"
    assert await status_of(route_id) == "active"
    monkeypatch.setattr(tunnel_services, "activation_check", boom)
    await tunnel.send({"type": "tunnel.activate", "request_id": "again", "routes": [route_id]})
    assert await closed_with(tunnel) == 1011
    assert tunnels.count_for_owner("owner-1") == 0
    assert await status_of(route_id) == "provisioned"
    await tunnel.close()


async def test_a_failing_tunnel_admission_is_a_500_internal_error(setup, monkeypatch):
    monkeypatch.setattr(tunnel_consumers, "tunnel_admit", boom)
    tunnel = TunnelSocket(application, OWNER, DEVICE)
    assert not await tunnel.connect()
    assert tunnel.denial == (500, {"error": "internal_error"})

"""The tunnel WebSocket and public ingress (docs/protocol/tunnels.md §3-5), in process."""

from __future__ import annotations

import asyncio
import base64

import pytest
from asgiref.sync import sync_to_async

from gateway_site.asgi import application
from tests.relay_helpers import TunnelSocket, bearer, register, token_for
from tunnels.models import IntegrationRoute

pytestmark = pytest.mark.django_db(transaction=True)
OWNER = token_for("owner-1", email="owner@example.com")
DEVICE = "dev_tunnel0001"


async def new_route(http, **body) -> dict:
    response = await http.post(
        "/gateway/v1/integrations/routes",
        json={"device_id": DEVICE, "interface_type": "http", **body},
        headers=bearer(OWNER),
    )
    assert response.status_code == 201, response.text
    return response.json()


async def connect(device=DEVICE, token=OWNER) -> TunnelSocket:
    socket = TunnelSocket(application, token, device)
    (connected,) = await socket.open()
    assert connected["type"] == "tunnel.connected" and connected["device_id"] == device
    return socket


async def activate(socket, *route_ids, request_id="act-1") -> dict:
    await socket.send({"type": "tunnel.activate", "request_id": request_id, "routes": list(route_ids)})
    return await socket.recv()


async def status_of(route_id) -> str:
    return (await sync_to_async(IntegrationRoute.objects.get)(route_id=route_id)).status


# The socket


@pytest.mark.parametrize(
    ("token", "device", "expected"),
    [
        (None, DEVICE, (401, {"error": "missing bearer token"})),
        (
            token_for("owner-1", scope="profile"),
            DEVICE,
            (403, {"error": "insufficient_scope", "required_scopes": ["device"], "missing_scopes": ["device"]}),
        ),
        (OWNER, "x", (400, {"error": "device_id query param is required"})),
        (OWNER, "dev_unknown1", (400, {"error": "device_not_found"})),
        (token_for("other-2"), DEVICE, (403, {"error": "forbidden"})),
    ],
)
async def test_upgrade_refusals(setup, token, device, expected):
    socket = TunnelSocket(application, token, device)
    assert not await socket.connect()
    assert socket.denial == expected


async def test_activate_and_deactivate(setup):
    http = setup
    route = (await new_route(http))["route"]["route_id"]
    socket = await connect()
    result = await activate(socket, route, {"route_id": "rt_" + "0" * 32}, "")
    assert result == {
        "type": "tunnel.activate.result",
        "request_id": "act-1",
        "results": [
            {"route_id": route, "status": "active", "activation": "clean"},
            {
                "route_id": "rt_" + "0" * 32,
                "status": "rejected",
                "error": {"code": "route_not_found", "message": "Route not found"},
            },
        ],
    }
    assert await status_of(route) == "active"
    assert (await activate(socket, route))["results"][0]["status"] == "active"  # idempotent
    await socket.send({"type": "tunnel.deactivate", "routes": [route, "rt_" + "1" * 32]})
    result = await socket.recv()
    assert result["request_id"].startswith("deact_")
    assert result["results"] == [
        {"route_id": route, "status": "inactive"},
        {
            "route_id": "rt_" + "1" * 32,
            "status": "rejected",
            "error": {"code": "route_not_found", "message": "Route not active on this tunnel"},
        },
    ]
    assert await status_of(route) == "inactive"
    await socket.close()


async def test_activation_rejections(setup):
    http = setup
    await sync_to_async(register)("dev_tunnel0002", "owner-1")
    await sync_to_async(register)("dev_theirs001", "other-2")
    mine_elsewhere = (
        await http.post(
            "/gateway/v1/integrations/routes",
            json={"device_id": "dev_tunnel0002", "interface_type": "http"},
            headers=bearer(OWNER),
        )
    ).json()["route"]["route_id"]
    theirs = (
        await http.post(
            "/gateway/v1/integrations/routes",
            json={"device_id": "dev_theirs001", "interface_type": "http"},
            headers=bearer(token_for("other-2")),
        )
    ).json()["route"]["route_id"]
    disabled = (await new_route(http))["route"]["route_id"]
    await http.put(f"/gateway/v1/integrations/routes/{disabled}", json={"status": "inactive"}, headers=bearer(OWNER))
    socket = await connect()
    results = (await activate(socket, mine_elsewhere, theirs, disabled))["results"]
    assert [r["error"]["code"] for r in results] == ["device_mismatch", "route_not_owned", "route_inactive"]
    empty = await activate(socket)
    assert empty["results"] == []
    await socket.close()


async def test_frames_the_tunnel_may_send(setup):
    socket = await connect()
    await socket.send({"type": "ping"})
    await socket.send({"type": "heartbeat"})
    assert await socket.nothing()
    await socket.send({"type": "something"})
    assert await socket.recv() == {"type": "tunnel.error", "error": "unknown_frame_type"}
    await socket.send("{nope")
    assert await socket.recv() == {"type": "tunnel.error", "error": "invalid_json"}
    await socket.send('{"type":' * 100_000)  # nested far past 64 levels: answered, the socket stays
    assert await socket.recv() == {"type": "tunnel.error", "error": "invalid_json"}
    await socket.send({"type": "something"})
    assert await socket.recv() == {"type": "tunnel.error", "error": "unknown_frame_type"}
    await socket.send({"type": "tunnel.response", "request_id": "req_unknown"})
    await socket.send({"type": "tunnel.response"})
    assert await socket.nothing()
    await socket.close()


async def test_replacement_and_close_return_routes_to_provisioned(setup):
    http = setup
    route = (await new_route(http))["route"]["route_id"]
    first = await connect()
    await activate(first, route)
    second = await connect()
    closing = await first.recv_raw()
    assert (closing["type"], closing["code"], closing.get("reason")) == (
        "websocket.close",
        1000,
        "replaced_by_new_connection",
    )
    assert await status_of(route) == "provisioned"  # the new socket starts with no activations
    await activate(second, route)
    await second.close()
    assert await status_of(route) == "provisioned"


async def test_api_changes_tell_the_tunnel(setup):
    http = setup
    route = (await new_route(http))["route"]["route_id"]
    other = (await new_route(http))["route"]["route_id"]
    socket = await connect()
    await activate(socket, route, other)
    await http.put(f"/gateway/v1/integrations/routes/{route}", json={"status": "provisioned"}, headers=bearer(OWNER))
    frame = await socket.recv()
    assert (frame["type"], frame["route_id"], frame["reason"]) == ("tunnel.route_deactivated", route, "route_updated")
    await http.delete(f"/gateway/v1/integrations/routes/{other}", headers=bearer(OWNER))
    frame = await socket.recv()
    assert (frame["route_id"], frame["reason"]) == (other, "revoked")
    await socket.close()


# Ingress


async def answering(socket, *, status=200, headers=None, body=b"", delay=0.0):
    request = await socket.recv()
    if delay:
        await asyncio.sleep(delay)
    await socket.send(
        {
            "type": "tunnel.response",
            "request_id": request["request_id"],
            "status": status,
            "headers": headers or [],
            "body_base64": base64.b64encode(body).decode(),
        }
    )
    return request


async def live_route(http, **body):
    created = await new_route(http, **body)
    socket = await connect()
    await activate(socket, created["route"]["route_id"])
    path = created["public_url"].removeprefix("http://localhost:8080")
    return created, socket, path


async def test_webhook_round_trip(setup):
    http = setup
    created, socket, path = await live_route(http)
    answer = asyncio.ensure_future(
        answering(
            socket,
            status=207,
            headers=[
                ["Content-Type", "application/json"],
                ["X-Tunnel", "ok"],
                ["Set-Cookie", "a=b"],
                ["Bad\r\nName", "x"],
                ["X-Tunnel", "last"],
                ["bad"],
            ],
            body=b'{"ok":true}',
        )
    )
    response = await http.post(
        f"{path}?source=test",
        content=b"\x00\x01binary",
        headers={"X-Github-Event": "push", "Content-Type": "application/octet-stream"},
    )
    request = await answer
    assert (response.status_code, response.content) == (207, b'{"ok":true}')
    assert response.headers["content-type"] == "application/json" and response.headers["x-tunnel"] == "last"
    assert "set-cookie" not in response.headers
    assert request["type"] == "tunnel.request" and request["method"] == "POST"
    assert request["request_id"].startswith("req_") and len(request["request_id"]) == 16
    assert request["route_id"] == created["route"]["route_id"] and request["deadline_ms"] == 2500
    assert request["query"] == "source=test" and request["path"] == path
    assert request["raw_target"] == f"{path}?source=test"
    assert base64.b64decode(request["raw_target_base64"]).decode() == request["raw_target"]
    assert request["external_url"] == f"http://testserver{path}?source=test"
    assert base64.b64decode(request["body_base64"]) == b"\x00\x01binary"
    names = [name for name, _ in request["headers"]]
    assert "X-Github-Event" in names and "Host" not in names and "Connection" not in names
    route = await sync_to_async(IntegrationRoute.objects.get)(route_id=created["route"]["route_id"])
    assert route.token_last_used_at is not None
    await socket.close()


async def test_default_status_and_content_type(setup):
    http = setup
    _, socket, path = await live_route(http)
    answer = asyncio.ensure_future(socket.recv())
    get = asyncio.ensure_future(http.get(path))
    request = await answer
    await socket.send(
        {"type": "tunnel.response", "request_id": request["request_id"], "status": "x", "body_base64": ""}
    )
    response = await get
    assert (response.status_code, response.headers["content-type"]) == (200, "text/plain; charset=utf-8")
    assert request["method"] == "GET" and request["body_base64"] == ""
    await socket.close()


async def test_bad_tunnel_answers_are_502(setup):
    http = setup
    _, socket, path = await live_route(http)
    for bad in ({"body_base64": "%%%"}, {"status": 0}, {"status": 1000}):
        answer = asyncio.ensure_future(socket.recv())
        call = asyncio.ensure_future(http.post(path, content=b"x"))
        request = await answer
        await socket.send({"type": "tunnel.response", "request_id": request["request_id"], **bad})
        assert (await call).status_code == 502
    await socket.close()


async def test_refusals(setup):
    http = setup
    created = await new_route(http)
    route_id, token = created["route"]["route_id"], created["route_token"]
    assert (await http.post(f"/integrations/{route_id}/wrong-token")).status_code == 404
    assert (await http.post(f"/integrations/rt_{'0' * 32}/{token}")).status_code == 404
    response = await http.post(f"/integrations/{route_id}/{token}")
    assert (response.status_code, response.text) == (503, "Service Unavailable")  # provisioned: not active
    assert (await http.post(f"/integrations/{route_id}/{token}/extra")).status_code == 404
    socket = await connect()
    await activate(socket, route_id)
    await socket.close()  # the tunnel leaves; its route goes back to provisioned
    assert (await http.post(f"/integrations/{route_id}/{token}")).status_code == 503


async def test_body_limits(setup):
    http = setup
    _, socket, path = await live_route(http, max_body_bytes=1024)
    response = await http.post(path, content=b"x" * 1025)
    assert (response.status_code, response.text) == (413, "Request Entity Too Large")
    five_mib = 5 * 1024 * 1024
    response = await http.post(path, content=b"x" * (five_mib + 1))
    assert response.status_code == 413 and response.headers["content-type"].startswith("text/plain")
    await socket.close()


async def test_slow_tunnel_is_504_and_its_late_answer_is_dropped(setup):
    http = setup
    _, socket, path = await live_route(http, deadline_ms=500)
    answer = asyncio.ensure_future(socket.recv())
    response = await http.post(path, content=b"x")
    assert (response.status_code, response.text) == (504, "Gateway Timeout")
    request = await answer
    await socket.send({"type": "tunnel.response", "request_id": request["request_id"], "status": 200})
    assert await socket.nothing()
    await socket.close()


async def test_tunnel_loss_fails_waiting_requests_at_once(setup):
    http = setup
    _, socket, path = await live_route(http, deadline_ms=10000)
    call = asyncio.ensure_future(http.post(path, content=b"x"))
    await socket.recv()
    await socket.close()
    response = await asyncio.wait_for(call, timeout=5)
    assert response.status_code == 503


async def test_only_the_owning_device_may_answer(setup):
    http = setup
    await sync_to_async(register)("dev_tunnel0002", "owner-1")
    _, socket, path = await live_route(http)
    intruder = await connect("dev_tunnel0002")
    call = asyncio.ensure_future(http.post(path, content=b"x"))
    request = await socket.recv()
    await intruder.send({"type": "tunnel.response", "request_id": request["request_id"], "status": 200})
    assert await intruder.recv() == {
        "type": "tunnel.error",
        "error": "response_ownership_mismatch",
        "request_id": request["request_id"],
        "message": "You do not own this inflight request",
    }
    await socket.send({"type": "tunnel.response", "request_id": request["request_id"], "status": 201})
    assert (await call).status_code == 201
    await socket.close()
    await intruder.close()


async def test_rotation_grace_keeps_the_old_url_working(setup):
    http = setup
    created, socket, path = await live_route(http)
    rotated = (
        await http.post(
            f"/gateway/v1/integrations/routes/{created['route']['route_id']}/rotate-token",
            json={"grace_seconds": 60},
            headers=bearer(OWNER),
        )
    ).json()
    for url in (path, rotated["public_url"].removeprefix("http://localhost:8080")):
        answer = asyncio.ensure_future(answering(socket, status=204))
        assert (await http.post(url)).status_code == 204
        await answer
    await http.post(
        f"/gateway/v1/integrations/routes/{created['route']['route_id']}/rotate-token",
        json={"grace_seconds": 0},
        headers=bearer(OWNER),
    )
    assert (await http.post(path)).status_code == 404
    await socket.close()


async def test_rate_limits_global_ip_and_route(setup, configure):
    http = setup
    created = await new_route(http)
    path = created["public_url"].removeprefix("http://localhost:8080")
    await sync_to_async(configure)(ingress_route_limit_per_window=2, ingress_rate_window_seconds=30)
    assert [(await http.post(path)).status_code for _ in range(3)] == [503, 503, 429]
    limited = await http.post(path)
    assert (limited.status_code, limited.text) == (429, "Too Many Requests")
    assert 1 <= int(limited.headers["retry-after"]) <= 30  # the time left in the 30 s window
    other = f"/integrations/rt_{'2' * 32}/tok"
    assert (await http.post(other)).status_code == 404  # another route has its own budget
    await sync_to_async(configure)(ingress_ip_limit_per_window=1, ingress_route_limit_per_window=100)
    assert (await http.post(f"/integrations/rt_{'3' * 32}/tok")).status_code == 429  # this IP used its budget


def test_retry_after_is_the_time_left_in_the_window_rounded_up():
    from gateway_site.ratelimit import seconds_left

    assert seconds_left(30, now=3000.0) == 30  # a window just began
    assert seconds_left(30, now=3010.2) == 20
    assert seconds_left(30, now=3029.5) == 1
    assert seconds_left(30, now=3029.999) == 1  # never 0


async def test_health_counts_routes_and_tunnels(setup):
    http = setup
    _, socket, _ = await live_route(http)
    body = (await http.get("/gateway/v1/health", headers=bearer(OWNER))).json()
    assert (body["routes"], body["tunnels"], body["inflight"]) == (1, 1, 0)
    await socket.close()


async def test_a_tunnel_may_turn_back_on_what_it_turned_off(setup):
    http = setup
    route = (await new_route(http))["route"]["route_id"]
    socket = await connect()
    await activate(socket, route)
    await socket.send({"type": "tunnel.deactivate", "routes": [route]})
    assert (await socket.recv())["results"][0]["status"] == "inactive"
    assert (await activate(socket, route))["results"][0]["status"] == "active"  # only an owner's PUT disables it
    await socket.close()


async def test_non_preflight_options_reaches_ingress(setup):
    http = setup
    _, socket, path = await live_route(http)
    answer = asyncio.ensure_future(answering(socket, status=204))
    response = await http.options(path)
    request = await answer
    assert response.status_code == 204 and request["method"] == "OPTIONS"
    preflight = await http.options(
        path, headers={"Origin": "https://x.example", "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 204 and "access-control-allow-methods" in preflight.headers
    await socket.close()


async def test_non_string_frame_type_is_invalid_json(setup):
    socket = await connect()
    await socket.send({"type": 123})
    assert await socket.recv() == {"type": "tunnel.error", "error": "invalid_json"}
    await socket.close()


async def test_deleting_the_device_ends_its_routes_at_once(setup):
    http = setup
    created, socket, path = await live_route(http)
    answer = asyncio.ensure_future(answering(socket, status=200))
    assert (await http.post(path)).status_code == 200  # the snapshot is warm
    await answer
    assert (await http.delete(f"/gateway/v1/devices/{DEVICE}", headers=bearer(OWNER))).status_code == 204
    frame = await socket.recv()
    assert (frame["type"], frame["route_id"], frame["reason"]) == (
        "tunnel.route_deactivated",
        created["route"]["route_id"],
        "revoked",
    )
    assert (await http.post(path)).status_code == 404
    await socket.close()


async def test_an_owner_holds_at_most_max_tunnels_and_a_replacement_keeps_its_place(setup, monkeypatch):
    http = setup
    from tunnels import consumers

    monkeypatch.setattr(consumers, "MAX_TUNNELS_PER_OWNER", 1)
    await sync_to_async(register)("dev_tunnel0002", "owner-1")
    first = await connect()
    refused = TunnelSocket(application, OWNER, "dev_tunnel0002")
    assert not await refused.connect()
    assert refused.denial == (429, {"error": "too many tunnel connections"})
    plain = await http.get("/gateway/v1/integrations/tunnel/connect?device_id=dev_tunnel0002", headers=bearer(OWNER))
    assert (plain.status_code, plain.json()) == (429, {"error": "too many tunnel connections"})
    assert (
        await http.get(f"/gateway/v1/integrations/tunnel/connect?device_id={DEVICE}", headers=bearer(OWNER))
    ).status_code == 426
    replacement = await connect()  # the same device again: it takes the place of its previous socket
    closing = await first.recv_raw()
    assert (closing["type"], closing.get("reason")) == ("websocket.close", "replaced_by_new_connection")
    await first.close()
    assert not await TunnelSocket(application, OWNER, "dev_tunnel0002").connect()  # the place is still taken
    await replacement.close()
    other = await connect("dev_tunnel0002")  # closing gave the place back
    await other.close()

"""Offline buffering (docs/protocol/webhooks.md §3), in process, with a real tunnel socket: webhooks stored while no
tunnel is connected, delivered in arrival order on activation, their records updated."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import time

import pytest
from asgiref.sync import sync_to_async

from console import operator_services
from gateway_site.asgi import application
from tests.relay_helpers import Stream, bearer
from tests.tunnels.test_tunnel_and_ingress import OWNER, activate, answering, connect, new_route
from tunnels import buffer, buffering, inspector, verify

pytestmark = pytest.mark.django_db(transaction=True)
BASE = "/gateway/v1/integrations/routes"
ON = {"enabled": True}


async def records(http, route_id) -> list[dict]:
    response = await http.get(f"{BASE}/{route_id}/requests", headers=bearer(OWNER))
    assert response.status_code == 200, response.text
    return response.json()["requests"]


async def until(check, timeout: float = 5.0):
    """Poll `check` (a coroutine function) until it returns something truthy, within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met")


async def buffered_route(http, **body):
    created = await new_route(http, buffer=ON, **body)
    return created, created["route"]["route_id"], created["public_url"].removeprefix("http://localhost:8080")


async def test_route_field_buffer(setup):
    http = setup
    created = await new_route(http)
    route_id = created["route"]["route_id"]
    assert created["route"]["buffer"] == {"enabled": False, "max_requests": 100, "ttl_seconds": 3600}
    made = await new_route(http, buffer={"enabled": True, "max_requests": 1000, "ttl_seconds": 60})
    assert made["route"]["buffer"] == {"enabled": True, "max_requests": 1000, "ttl_seconds": 60}
    bad_values: list[tuple[object, str]] = [
        ([], 'buffer must be null or an object {"enabled": …, "max_requests": …, "ttl_seconds": …}'),
        ("on", 'buffer must be null or an object {"enabled": …, "max_requests": …, "ttl_seconds": …}'),
        (
            {"enabled": True, "size": 1},
            'buffer must be null or an object {"enabled": …, "max_requests": …, "ttl_seconds": …}',
        ),
        ({}, "buffer.enabled is required and must be true or false"),
        ({"enabled": "yes"}, "buffer.enabled is required and must be true or false"),
        ({"enabled": True, "max_requests": 0}, "buffer.max_requests must be an integer between 1 and 1000"),
        ({"enabled": True, "max_requests": 1001}, "buffer.max_requests must be an integer between 1 and 1000"),
        ({"enabled": True, "max_requests": "5"}, "buffer.max_requests must be an integer between 1 and 1000"),
        ({"enabled": True, "max_requests": True}, "buffer.max_requests must be an integer between 1 and 1000"),
        ({"enabled": True, "ttl_seconds": 59}, "buffer.ttl_seconds must be an integer between 60 and 86400"),
        ({"enabled": True, "ttl_seconds": 86401}, "buffer.ttl_seconds must be an integer between 60 and 86400"),
        ({"enabled": True, "ttl_seconds": 60.5}, "buffer.ttl_seconds must be an integer between 60 and 86400"),
        ({"enabled": True, "max_requests": None}, "buffer.max_requests must be an integer between 1 and 1000"),
        ({"enabled": None}, "buffer.enabled is required and must be true or false"),
    ]
    for bad, message in bad_values:
        response = await http.post(
            BASE, json={"device_id": "dev_tunnel0001", "interface_type": "http", "buffer": bad}, headers=bearer(OWNER)
        )
        assert (response.status_code, response.json()) == (
            400,
            {"error": {"code": "invalid_request", "message": message}},
        )
        response = await http.put(f"{BASE}/{route_id}", json={"buffer": bad}, headers=bearer(OWNER))
        assert (response.status_code, response.json()["error"]["message"]) == (400, message)
    response = await http.put(
        f"{BASE}/{route_id}", json={"buffer": {"enabled": True, "max_requests": 5}}, headers=bearer(OWNER)
    )
    assert response.json()["route"]["buffer"] == {"enabled": True, "max_requests": 5, "ttl_seconds": 3600}
    response = await http.put(f"{BASE}/{route_id}", json={"deadline_ms": 800}, headers=bearer(OWNER))
    assert response.json()["route"]["buffer"]["enabled"] is True  # absent: unchanged
    response = await http.put(f"{BASE}/{route_id}", json={"buffer": None}, headers=bearer(OWNER))
    assert response.json()["route"]["buffer"] == {"enabled": False, "max_requests": 100, "ttl_seconds": 3600}
    listed = (await http.get(BASE, headers=bearer(OWNER))).json()["routes"]
    assert all("buffer" in route for route in listed)


async def test_buffered_then_delivered_in_order_with_live_ones_behind(setup):
    http = setup
    _, route_id, path = await buffered_route(http, inspect={"capture_bodies": True})
    answers = []
    for n in range(3):
        response = await http.post(f"{path}?n={n}", content=f"body-{n}".encode(), headers={"X-Seq": str(n)})
        assert response.status_code == 202
        assert response.headers["content-type"].startswith("application/json")
        answers.append(response.json())
    assert all(a["status"] == "buffered" and re.fullmatch(r"rq_[0-9a-f]{32}", a["request_id"]) for a in answers)
    stored = await records(http, route_id)
    assert [r["request_id"] for r in stored] == [a["request_id"] for a in reversed(answers)]
    assert {(r["delivery"], r["status"]) for r in stored} == {("buffered", 202)}
    assert await buffer.store().count(route_id) == 3

    stream = Stream(application, f"{BASE}/{route_id}/requests/events", OWNER)
    assert await stream.open() == 200
    await stream.read_until(b":connected\n\n")
    socket = await connect()
    assert (await activate(socket, route_id))["results"][0]["status"] == "active"
    first = await socket.recv()
    assert first["type"] == "tunnel.request" and base64.b64decode(first["body_base64"]) == b"body-0"
    assert first["query"] == "n=0" and ["X-Seq", "0"] in first["headers"] and first["path"] == path
    assert first["request_id"].startswith("req_") and first["deadline_ms"] == 2500
    # A webhook arriving while the drain runs queues behind the stored ones, though the tunnel is connected.
    live = await http.post(path, content=b"live")
    assert live.status_code == 202 and live.json()["status"] == "buffered"
    await socket.send(
        {"type": "tunnel.response", "request_id": first["request_id"], "status": 201, "body_base64": "b2s="}
    )
    created = json.loads((await stream.read_until(b"\n\n")).decode().split("data: ", 1)[1])
    assert (created["request_id"], created["delivery"]) == (live.json()["request_id"], "buffered")
    event = json.loads((await stream.read_until(b"\n\n")).decode().split("data: ", 1)[1])  # the first one, updated
    assert (event["request_id"], event["delivery"], event["status"]) == (answers[0]["request_id"], "delivered", 201)
    assert event["response"]["status"] == 201 and event["response"]["body_size"] == 2 and "delivered_at" in event
    bodies = [b"body-0"]
    for _ in range(3):
        frame = await answering(socket, status=200, body=b"ok")
        bodies.append(base64.b64decode(frame["body_base64"]))
    assert bodies == [b"body-0", b"body-1", b"body-2", b"live"]

    async def all_delivered():
        found = await records(http, route_id)
        return found if {r["delivery"] for r in found} == {"delivered"} else None

    found = await until(all_delivered)
    assert [r["status"] for r in found] == [200, 200, 200, 201]
    assert await buffer.store().count(route_id) == 0
    # Drained: the next webhook is live again.
    response_task = asyncio.ensure_future(http.post(path, content=b"now"))
    await answering(socket, status=200, body=b"ok")
    assert (await response_task).status_code == 200
    assert (await records(http, route_id))[0]["delivery"] == "live"
    await stream.close()
    await socket.close()


async def test_full_buffer_is_503_and_buffering_off_is_503(setup):
    http = setup
    created = await new_route(http, buffer={"enabled": True, "max_requests": 1})
    route_id, path = created["route"]["route_id"], created["public_url"].removeprefix("http://localhost:8080")
    assert (await http.post(path, content=b"one")).status_code == 202
    full = await http.post(path, content=b"two")
    assert (full.status_code, full.text) == (503, "Service Unavailable")
    newest = (await records(http, route_id))[0]
    assert (newest["delivery"], newest["status"]) == ("rejected", 503)
    plain = await new_route(http)
    off = await http.post(plain["public_url"].removeprefix("http://localhost:8080"), content=b"x")
    assert off.status_code == 503
    assert await buffer.store().count(plain["route"]["route_id"]) == 0


async def test_expired_entries_are_410_and_never_sent(setup, monkeypatch):
    http = setup
    created = await new_route(http, buffer={"enabled": True, "ttl_seconds": 60})
    route_id, path = created["route"]["route_id"], created["public_url"].removeprefix("http://localhost:8080")
    stale = (await http.post(path, content=b"stale")).json()["request_id"]
    socket = await connect()
    later = time.time() + 61
    monkeypatch.setattr(buffering, "clock", lambda: later)
    await activate(socket, route_id)  # the drain finds the entry expired: nothing is sent

    async def expired():
        record = (await records(http, route_id))[0]
        return record if record["delivery"] == "rejected" else None

    record = await until(expired)
    assert (record["request_id"], record["status"], record["response"]["status"]) == (stale, 410, 410)
    assert await socket.nothing()
    assert await buffer.store().count(route_id) == 0
    response_task = asyncio.ensure_future(http.post(path, content=b"fresh"))  # live again
    frame = await answering(socket, body=b"ok")
    assert base64.b64decode(frame["body_base64"]) == b"fresh" and (await response_task).status_code == 200
    await socket.close()


async def test_signature_refused_is_not_buffered(setup):
    http = setup
    secret = "shared-secret-1"
    created = await new_route(http, buffer=ON, verify={"provider": "github", "secret": secret})
    route_id, path = created["route"]["route_id"], created["public_url"].removeprefix("http://localhost:8080")
    forged = await http.post(path, content=b"forged", headers={"X-Hub-Signature-256": "sha256=" + "0" * 64})
    assert (forged.status_code, forged.text) == (401, "invalid signature")
    assert await buffer.store().count(route_id) == 0
    good = "sha256=" + hmac.new(secret.encode(), b"genuine", hashlib.sha256).hexdigest()
    accepted = await http.post(path, content=b"genuine", headers={"X-Hub-Signature-256": good})
    assert accepted.status_code == 202
    newest, refused = await records(http, route_id)
    assert (newest["delivery"], newest["verified"], refused["delivery"], refused["status"]) == (
        "buffered",
        True,
        "rejected",
        401,
    )
    too_big = await http.post(path, content=b"x" * 2_000_000, headers={"X-Hub-Signature-256": good})
    assert too_big.status_code == 413 and await buffer.store().count(route_id) == 1


async def test_tunnel_lost_mid_drain_keeps_the_entry_and_a_silent_tunnel_is_504(setup):
    http = setup
    created = await new_route(http, buffer=ON, deadline_ms=500)
    route_id, path = created["route"]["route_id"], created["public_url"].removeprefix("http://localhost:8080")
    ids = [(await http.post(path, content=f"b{n}".encode())).json()["request_id"] for n in range(3)]
    socket = await connect()
    await activate(socket, route_id)
    first = await socket.recv()
    assert base64.b64decode(first["body_base64"]) == b"b0"
    await socket.close()  # gone before answering: b0 stays at the head
    await until(lambda: _count_is(route_id, 3))
    socket = await connect()
    await activate(socket, route_id)
    again = await socket.recv()  # at least once: b0 again, under a new frame id
    assert base64.b64decode(again["body_base64"]) == b"b0" and again["request_id"] != first["request_id"]
    # Not answered within the route's 500 ms deadline: 504, and the drain goes on with the next.
    second = await socket.recv()
    assert base64.b64decode(second["body_base64"]) == b"b1"
    await socket.send({"type": "tunnel.response", "request_id": second["request_id"], "status": 200})
    third = await answering(socket, status=200)
    assert base64.b64decode(third["body_base64"]) == b"b2"

    async def settled():
        found = {r["request_id"]: r for r in await records(http, route_id)}
        states = [(found[i]["delivery"], found[i]["status"]) for i in ids]
        return states if all(s != "buffered" for s, _ in states) else None

    assert await until(settled) == [("rejected", 504), ("delivered", 200), ("delivered", 200)]
    await socket.close()


async def _count_is(route_id: str, count: int) -> bool:
    return await buffer.store().count(route_id) == count


async def test_operators_see_buffered_and_recorded_counts_and_deletion_drops_the_buffer(setup):
    http = setup
    _, route_id, path = await buffered_route(http)
    for _ in range(2):
        assert (await http.post(path, content=b"x")).status_code == 202
    listed = await sync_to_async(operator_services.routes)()
    row = next(r for r in listed["routes"] if r["route_id"] == route_id)
    assert (row["buffered"], row["recorded"]) == (2, 2)
    assert (await http.delete(f"{BASE}/{route_id}", headers=bearer(OWNER))).status_code == 200
    assert await buffer.store().count(route_id) == 0


async def test_an_outcome_reached_before_the_record_was_written_is_applied_when_it_is(setup):
    """A drain already running can deliver a webhook before ingress has written its record (that happens after the
    202 went out): the outcome waits, and writing the record applies it."""
    http = setup
    _, route_id, _ = await buffered_route(http)
    record_id = inspector.new_request_id()
    record = {"request_id": record_id, "delivery": "buffered", "status": 202}
    await buffering._settle(route_id, record_id, {"delivery": "delivered", "status": 200})
    assert await inspector.request_log().get(route_id, record_id) is None  # nothing made up
    await inspector.save(route_id, record)
    await buffering.record_saved(route_id, record)
    saved = await inspector.request_log().get(route_id, record_id)
    assert saved is not None and (saved["delivery"], saved["status"]) == ("delivered", 200)


async def test_turning_buffering_off_keeps_what_is_stored_for_delivery(setup):
    http = setup
    _, route_id, path = await buffered_route(http)
    assert (await http.post(path, content=b"kept")).status_code == 202
    off = await http.put(f"{BASE}/{route_id}", json={"buffer": None}, headers=bearer(OWNER))
    assert off.json()["route"]["buffer"]["enabled"] is False
    assert (await http.post(path, content=b"refused")).status_code == 503  # no longer stored
    socket = await connect()
    await activate(socket, route_id)
    frame = await answering(socket, body=b"ok")
    assert base64.b64decode(frame["body_base64"]) == b"kept"
    await until(lambda: _count_is(route_id, 0))
    await socket.close()


async def test_stored_webhooks_are_sealed_at_rest_and_a_changed_key_drops_them(setup, monkeypatch):
    """A stored frame holds the route token (its path) and the sender's credentials: the store keeps it sealed,
    bound to its route; after JWT_SIGNING_KEY changes it cannot be opened and is dropped as expired (410)."""
    http = setup
    created, route_id, path = await buffered_route(http)
    token = created["route_token"]
    assert (
        await http.post(path, content=b"secret-body-1", headers={"Authorization": "Bearer sender-cred"})
    ).status_code == 202
    stored = await buffer.store().head(route_id)
    assert stored is not None and set(stored.frame) == {"sealed"}
    for secret in (token, "secret-body-1", "sender-cred", base64.b64encode(b"secret-body-1").decode()):
        assert secret not in stored.text
    other = await new_route(http, buffer=ON)
    assert buffering.opened(stored, other["route"]["route_id"]) is None  # bound to its own route
    frame = buffering.opened(stored, route_id)
    assert frame is not None and frame["path"].endswith(token)
    monkeypatch.setattr(verify, "_key", lambda signing_key: b"k" * 32)  # as if JWT_SIGNING_KEY had changed
    socket = await connect()
    await activate(socket, route_id)

    async def dropped():
        record = (await records(http, route_id))[0]
        return record if record["delivery"] == "rejected" else None

    record = await until(dropped)
    assert (record["status"], await buffer.store().count(route_id)) == (410, 0)
    assert await socket.nothing()
    await socket.close()

"""The request inspector and replay (docs/protocol/webhooks.md §2), in process."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re

import pytest
from django.conf import settings

from gateway_site.asgi import application
from tests.relay_helpers import Stream, bearer, token_for
from tests.tunnels.test_tunnel_and_ingress import OWNER, answering, live_route, new_route
from tunnels import inspector

pytestmark = pytest.mark.django_db(transaction=True)
BASE = "/gateway/v1/integrations/routes"


async def records(http, route_id, **params) -> list[dict]:
    response = await http.get(f"{BASE}/{route_id}/requests", params=params, headers=bearer(OWNER))
    assert response.status_code == 200, response.text
    return response.json()["requests"]


async def webhook(http, socket, path, **kwargs):
    """One webhook the tunnel answers 200 with `ok`."""
    answer = asyncio.ensure_future(answering(socket, headers=[["Content-Type", "text/plain"]], body=b"ok"))
    response = await http.post(path, **kwargs)
    return response, await answer


async def test_route_field_inspect(setup):
    http = setup
    created = await new_route(http)
    route_id = created["route"]["route_id"]
    assert created["route"]["inspect"] == {"capture_bodies": False}
    assert (await new_route(http, inspect={"capture_bodies": True}))["route"]["inspect"] == {"capture_bodies": True}
    bad: object
    for bad in ({"capture_bodies": "yes"}, {"other": True}, [], "on", 1):
        response = await http.post(
            BASE, json={"device_id": "dev_tunnel0001", "interface_type": "http", "inspect": bad}, headers=bearer(OWNER)
        )
        assert response.status_code == 400
        assert response.json() == {
            "error": {
                "code": "invalid_request",
                "message": 'inspect must be null or an object {"capture_bodies": true|false}',
            }
        }
        response = await http.put(f"{BASE}/{route_id}", json={"inspect": bad}, headers=bearer(OWNER))
        assert response.status_code == 400
    response = await http.put(f"{BASE}/{route_id}", json={"inspect": {"capture_bodies": True}}, headers=bearer(OWNER))
    assert response.json()["route"]["inspect"] == {"capture_bodies": True}
    response = await http.put(f"{BASE}/{route_id}", json={"inspect": None}, headers=bearer(OWNER))
    assert response.json()["route"]["inspect"] == {"capture_bodies": False}
    listed = (await http.get(BASE, headers=bearer(OWNER))).json()["routes"]
    assert all("inspect" in route for route in listed)


async def test_records_are_redacted_and_newest_first(setup):
    http = setup
    created, socket, path = await live_route(http, inspect={"capture_bodies": True})
    route_id, token = created["route"]["route_id"], created["route_token"]
    body = json.dumps({"hook": {"url": created["public_url"]}}).encode()
    response, frame = await webhook(
        http,
        socket,
        f"{path}?a=1&echo={token}",
        content=body,
        headers={
            "Authorization": "Bearer s3cret",
            "Cookie": "sid=s3cret",
            "Proxy-Authorization": "Basic s3cret",
            "X-Hub-Signature-256": "sha256=s3cret",
            "Stripe-Signature": "t=1,v1=s3cret",
            "X-Slack-Signature": "v0=s3cret",
            "X-Original-Uri": path,
            "X-GitHub-Event": "push",
        },
    )
    assert response.status_code == 200
    second, _ = await webhook(http, socket, path, content=b"second")
    assert second.status_code == 200
    found = await records(http, route_id)
    assert [base64.b64decode(r["body_base64"]) for r in found][0] == b"second"
    record = found[1]
    assert re.fullmatch(r"rq_[0-9a-f]{32}", record["request_id"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["received_at"])
    assert record["method"] == "POST" and record["query"] == "a=1&echo=[redacted]"
    headers = record["headers"]
    for name in ("authorization", "cookie", "proxy-authorization", "x-hub-signature-256", "stripe-signature"):
        assert headers[name] == "[redacted]"
    assert headers["x-slack-signature"] == "[redacted]" and headers["x-github-event"] == "push"
    assert headers["x-original-uri"] == f"/integrations/{route_id}/[redacted]"
    assert record["body_size"] == len(body)
    assert token.encode() not in base64.b64decode(record["body_base64"])
    assert (record["delivery"], record["status"], record["replay_of"], record["verified"]) == ("live", 200, None, None)
    assert record["response"] == {"status": 200, "headers": {"content-type": "text/plain"}, "body_size": 2}
    assert isinstance(record["duration_ms"], int)
    text = json.dumps(found)
    assert token not in text and "s3cret" not in text
    assert frame["headers"]  # the tunnel itself still gets every header
    assert ["Authorization", "Bearer s3cret"] in frame["headers"]
    assert (await records(http, route_id, limit="1")) == found[:1]
    one = await http.get(f"{BASE}/{route_id}/requests/{record['request_id']}", headers=bearer(OWNER))
    assert (one.status_code, one.json()) == (200, record)
    await socket.close()


async def test_what_is_recorded(setup):
    http = setup
    created = await new_route(http, max_body_bytes=1024)
    route_id, path = created["route"]["route_id"], created["public_url"].removeprefix("http://localhost:8080")
    assert (await http.post(f"/integrations/{route_id}/{'x' * 43}", content=b"x")).status_code == 404
    assert (await http.post(path, content=b"nobody")).status_code == 503  # no tunnel
    assert (await http.post(path, content=b"y" * 2000)).status_code == 413
    found = await records(http, route_id)
    assert [(r["status"], r["delivery"], r["body_size"]) for r in found] == [
        (413, "rejected", 2000),
        (503, "rejected", 6),
    ]
    assert all("body_base64" not in r for r in found)  # bodies are not captured by default


async def test_capture_bounds(setup):
    http = setup
    created, socket, path = await live_route(http, max_body_bytes=200_000)
    route_id = created["route"]["route_id"]
    await webhook(http, socket, path, content=b"plain")
    assert "body_base64" not in (await records(http, route_id))[0]
    await http.put(f"{BASE}/{route_id}", json={"inspect": {"capture_bodies": True}}, headers=bearer(OWNER))
    big = b"b" * (inspector.MAX_BODY_BYTES + 1)
    await webhook(http, socket, path, content=big)
    record = (await records(http, route_id))[0]
    assert record["body_size"] == len(big) and record["body_truncated"] is True and "body_base64" not in record
    await webhook(http, socket, path, content=b"c" * inspector.MAX_BODY_BYTES)
    record = (await records(http, route_id))[0]
    assert len(base64.b64decode(record["body_base64"])) == inspector.MAX_BODY_BYTES
    await socket.close()


async def test_endpoint_errors(setup):
    http = setup
    route_id = (await new_route(http))["route"]["route_id"]
    for limit in ("0", "101", "x", "-1", "1.5", ""):
        response = await http.get(f"{BASE}/{route_id}/requests", params={"limit": limit}, headers=bearer(OWNER))
        assert response.status_code == 400
        assert response.json()["error"] == {
            "code": "invalid_request",
            "message": "limit must be an integer between 1 and 100",
        }
    other = token_for("other-2")
    missing = {"error": {"code": "route_not_found", "message": "Route not found"}}
    for url in (
        f"{BASE}/{route_id}/requests",
        f"{BASE}/{route_id}/requests/rq_{'0' * 32}",
    ):
        response = await http.get(url, headers=bearer(other))
        assert (response.status_code, response.json()) == (404, missing)
    replayed = await http.post(f"{BASE}/{route_id}/requests/rq_{'0' * 32}/replay", headers=bearer(other))
    assert (replayed.status_code, replayed.json()) == (404, missing)
    unknown = await http.get(f"{BASE}/rt_{'0' * 32}/requests", headers=bearer(OWNER))
    assert (unknown.status_code, unknown.json()) == (404, missing)
    malformed = await http.get(f"{BASE}/nope/requests", headers=bearer(OWNER))
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "invalid_request"
    for request_id in (f"rq_{'0' * 32}", "rq_x", "req_1", f"rq_{'A' * 32}"):
        response = await http.get(f"{BASE}/{route_id}/requests/{request_id}", headers=bearer(OWNER))
        assert response.status_code == 404
        assert response.json()["error"] == {"code": "request_not_found", "message": "Request not found"}
    assert (await http.get(f"{BASE}/{route_id}/requests")).status_code == 401
    assert (await http.delete(f"{BASE}/{route_id}/requests", headers=bearer(OWNER))).status_code == 405


async def test_events_stream(setup):
    """Records are announced to the route's open streams. Without shared state a process announces only the records of
    routes one of its own streams follows, and a stream that ends stops counting (nothing is kept for it)."""
    http = setup
    created, socket, path = await live_route(http)
    route_id = created["route"]["route_id"]
    shared = settings.GATEWAY.state_backend == "redis"
    assert inspector.followed(route_id) is shared
    denied = Stream(application, f"{BASE}/{route_id}/requests/events", token_for("other-2"))
    assert await denied.open() == 404
    assert inspector.followed(route_id) is shared
    stream = Stream(application, f"{BASE}/{route_id}/requests/events", OWNER)
    assert await stream.open() == 200
    await stream.read_until(b":connected\n\n")
    assert inspector.followed(route_id)
    await webhook(http, socket, path, content=b"hello")
    event = (await stream.read_until(b"\n\n")).decode()
    assert event.startswith("event: request\ndata: ")
    record = json.loads(event.split("data: ", 1)[1])
    assert record == (await records(http, route_id))[0]
    await stream.close()
    assert inspector.followed(route_id) is shared
    assert route_id not in inspector._listeners
    await socket.close()


@pytest.mark.memory_only
async def test_unfollowed_records_are_not_announced(setup, monkeypatch):
    """In one process, a record of a route no stream follows costs no channel-layer message."""
    from channels.layers import get_channel_layer

    http = setup
    created, socket, path = await live_route(http)
    route_id = created["route"]["route_id"]
    layer = get_channel_layer()
    assert layer is not None
    announced: list[str] = []
    group_send = layer.group_send

    async def counting(group, message):
        announced.append(group)
        await group_send(group, message)

    monkeypatch.setattr(layer, "group_send", counting)
    await webhook(http, socket, path, content=b"nobody listens")
    assert len(await records(http, route_id)) == 1
    assert inspector.events_group(route_id) not in announced
    stream = Stream(application, f"{BASE}/{route_id}/requests/events", OWNER)
    assert await stream.open() == 200
    await stream.read_until(b":connected\n\n")
    await webhook(http, socket, path, content=b"one stream listens")
    await stream.read_until(b"event: request\n")
    assert announced.count(inspector.events_group(route_id)) == 1
    await stream.close()
    await socket.close()


def test_received_at_is_rfc3339_utc_with_milliseconds():
    assert inspector.received_at(0.0) == "1970-01-01T00:00:00.000Z"
    assert inspector.received_at(1.9995) == "1970-01-01T00:00:01.999Z"
    assert inspector.received_at(1796378400.25) == "2026-12-04T10:00:00.250Z"


async def test_replay(setup):
    http = setup
    created, socket, path = await live_route(http, inspect={"capture_bodies": True})
    route_id = created["route"]["route_id"]
    _, first = await webhook(http, socket, f"{path}?q=1", content=b"payload", headers={"X-Hub-Signature-256": "x"})
    original = (await records(http, route_id))[0]
    answer = asyncio.ensure_future(answering(socket, status=202, body=b"again"))
    replayed = await http.post(f"{BASE}/{route_id}/requests/{original['request_id']}/replay", headers=bearer(OWNER))
    frame = await answer
    assert replayed.status_code == 200, replayed.text
    record = replayed.json()
    assert (record["replay_of"], record["delivery"], record["status"]) == (original["request_id"], "live", 202)
    assert base64.b64decode(frame["body_base64"]) == b"payload" and frame["query"] == "q=1"
    names = [name.lower() for name, _ in frame["headers"]]
    assert "x-hub-signature-256" not in names  # its value was not kept
    assert (await records(http, route_id))[0] == record
    await socket.close()
    no_tunnel = await http.post(f"{BASE}/{route_id}/requests/{original['request_id']}/replay", headers=bearer(OWNER))
    assert no_tunnel.status_code == 503
    assert no_tunnel.json()["error"]["code"] == "tunnel_unavailable"


async def test_replay_without_captured_body(setup):
    http = setup
    created, socket, path = await live_route(http)
    route_id = created["route"]["route_id"]
    await webhook(http, socket, path, content=b"secret body")
    with_body = (await records(http, route_id))[0]
    refused = await http.post(f"{BASE}/{route_id}/requests/{with_body['request_id']}/replay", headers=bearer(OWNER))
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "replay_unavailable"
    answer = asyncio.ensure_future(answering(socket, body=b"pong"))
    assert (await http.get(path)).status_code == 200
    await answer
    empty = (await records(http, route_id))[0]
    assert empty["body_size"] == 0 and "body_base64" not in empty
    answer = asyncio.ensure_future(answering(socket, body=b"pong"))
    replayed = await http.post(f"{BASE}/{route_id}/requests/{empty['request_id']}/replay", headers=bearer(OWNER))
    frame = await answer
    assert replayed.status_code == 200 and frame["method"] == "GET" and frame["body_base64"] == ""
    await socket.close()


async def test_events_stream_heartbeat_and_the_stream_cap(setup, configure, monkeypatch):
    from asgiref.sync import sync_to_async

    from tunnels import inspector_stream

    http = setup
    route_id = (await new_route(http))["route"]["route_id"]
    monkeypatch.setattr(inspector_stream, "HEARTBEAT_SECONDS", 0.05)
    await sync_to_async(configure)(max_streams_per_user=1)
    stream = Stream(application, f"{BASE}/{route_id}/requests/events", OWNER)
    assert await stream.open() == 200
    await stream.read_until(b":heartbeat\n\n")
    second = Stream(application, f"{BASE}/{route_id}/requests/events", OWNER)
    assert await second.open() == 429
    await stream.close()


async def test_signature_checks_are_recorded(setup):
    """§1 meets §2: a refused signature is recorded (401, rejected, verified false, its body when captured), a good
    one verified true, and the header a `hmac_sha256` route signs into is redacted like the providers' headers."""
    http = setup
    secret = "shared-secret-1"
    created, socket, path = await live_route(
        http,
        verify={"provider": "hmac_sha256", "secret": secret, "header": "X-Acme-Signature"},
        inspect={"capture_bodies": True},
    )
    route_id = created["route"]["route_id"]
    good = "sha256=" + hmac.new(secret.encode(), b"genuine", hashlib.sha256).hexdigest()
    forged = await http.post(path, content=b"forged", headers={"X-Acme-Signature": "sha256=" + "0" * 64})
    assert forged.status_code == 401
    response, _ = await webhook(http, socket, path, content=b"genuine", headers={"X-Acme-Signature": good})
    assert response.status_code == 200
    newest, oldest = await records(http, route_id)
    assert (oldest["status"], oldest["delivery"], oldest["verified"]) == (401, "rejected", False)
    assert base64.b64decode(oldest["body_base64"]) == b"forged"
    assert (newest["status"], newest["delivery"], newest["verified"]) == (200, "live", True)
    assert oldest["headers"]["x-acme-signature"] == newest["headers"]["x-acme-signature"] == "[redacted]"
    assert good not in json.dumps([newest, oldest])
    answer = asyncio.ensure_future(answering(socket, body=b"again"))
    replayed = await http.post(f"{BASE}/{route_id}/requests/{newest['request_id']}/replay", headers=bearer(OWNER))
    frame = await answer
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["verified"] is None  # a replay is not verified again
    assert "x-acme-signature" not in [name.lower() for name, _ in frame["headers"]]
    await socket.close()

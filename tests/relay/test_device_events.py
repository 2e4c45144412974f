"""`GET /gateway/v1/devices/events` (docs/protocol/devices-and-shares.md §7): exact bytes, snapshot, wakes."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from asgiref.sync import sync_to_async

from gateway_site.asgi import application
from tests.relay_helpers import AgentSocket, Stream, auth, register, token_for

pytestmark = pytest.mark.django_db(transaction=True)
OWNER = token_for("owner-1")
PATH = "/gateway/v1/devices/events"


def events(raw: bytes) -> list[dict]:
    out = []
    for block in raw.decode().split("\n\n"):
        if block.startswith("event: device.status\ndata: "):
            out.append(json.loads(block.split("data: ", 1)[1]))
    return out


async def test_stream_headers_and_first_bytes():
    await sync_to_async(register)("dev_b", "owner-1")
    await sync_to_async(register)("dev_x", "someone-else")
    stream = Stream(application, PATH, OWNER, Accept="text/event-stream")
    assert await stream.open() == 200
    assert stream.headers[b"content-type"] == b"text/event-stream"
    assert stream.headers[b"cache-control"] == b"no-cache"
    assert stream.headers[b"connection"] == b"keep-alive"
    assert stream.headers[b"x-accel-buffering"] == b"no"
    raw = await stream.read_until(b"}\n\n")
    assert raw == (b':connected\n\nevent: device.status\ndata: {"at":"","deviceId":"dev_b","status":"offline"}\n\n')
    await stream.close()


async def test_stream_errors_are_json():
    stream = Stream(application, PATH, None)
    assert await stream.open() == 401
    assert await stream.body_json() == {"error": "missing bearer token"}
    stream = Stream(application, PATH, "bad")
    assert await stream.open() == 401
    assert await stream.body_json() == {"error": "invalid access token: invalid jwt token"}


async def test_agent_connect_and_disconnect_wake_the_stream():
    await sync_to_async(register)("dev_a", "owner-1")
    stream = Stream(application, PATH, OWNER)
    await stream.open()
    await stream.read_until(b"}\n\n")
    agent = AgentSocket(application, OWNER, "dev_a")
    await agent.open()
    raw = await stream.read_until(b"}\n\n")
    assert raw.startswith(b":heartbeat\n\n")
    (event,) = events(raw)
    assert event["deviceId"] == "dev_a" and event["status"] == "online"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["at"])
    await agent.close()
    raw = await stream.read_until(b"}\n\n")
    assert events(raw) == [{"at": "", "deviceId": "dev_a", "status": "offline"}]
    await stream.close()


async def test_unchanged_status_is_not_repeated(settings):
    settings.GATEWAY_DEVICE_EVENTS_WAKE_SECONDS = 0.2
    await sync_to_async(register)("dev_a", "owner-1")
    stream = Stream(application, PATH, OWNER)
    await stream.open()
    await stream.read_until(b"}\n\n")
    raw = await stream.read_until(b":heartbeat\n\n:heartbeat\n\n")  # ticker wakes with nothing new
    assert b"device.status" not in raw
    await stream.close()


async def test_new_device_appears_at_the_next_wake(settings):
    settings.GATEWAY_DEVICE_EVENTS_WAKE_SECONDS = 0.2
    stream = Stream(application, PATH, OWNER)
    await stream.open()
    await stream.read_until(b":connected\n\n")
    await sync_to_async(register)("dev_late", "owner-1")
    raw = await stream.read_until(b"}\n\n")
    assert events(raw) == [{"at": "", "deviceId": "dev_late", "status": "offline"}]
    await stream.close()


async def test_deleted_device_is_dropped_at_once_with_the_time(client):
    await sync_to_async(register)("dev_a", "owner-1")
    stream = Stream(application, PATH, OWNER)
    await stream.open()
    await stream.read_until(b"}\n\n")
    response = await sync_to_async(client.delete)("/gateway/v1/devices/dev_a", **auth(OWNER))
    assert response.status_code == 204
    (event,) = events(await stream.read_until(b"}\n\n"))
    assert event["deviceId"] == "dev_a" and event["status"] == "offline" and event["at"].endswith("Z")
    await stream.close()


async def test_other_methods_fall_through_to_django():
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.post(PATH, headers={"Authorization": f"Bearer {OWNER}"})
        assert response.status_code == 405 and response.headers["Allow"] == "GET, HEAD"
        preflight = {"Origin": "https://x.example", "Access-Control-Request-Method": "GET"}
        assert (await http.options(PATH, headers=preflight)).status_code == 204


async def test_streams_carry_cors_headers(settings):
    from gateway_site.config import origin_pattern

    stream = Stream(application, PATH, OWNER, Origin="https://app.example.com")
    await stream.open()
    assert stream.headers[b"access-control-allow-origin"] == b"*"
    await stream.close()
    settings.CORS_ALLOW_ALL_ORIGINS = False
    settings.CORS_ALLOWED_ORIGIN_REGEXES = [origin_pattern("https://app.example.com")]
    stream = Stream(application, PATH, None, Origin="https://app.example.com")
    assert await stream.open() == 401
    assert stream.headers[b"access-control-allow-origin"] == b"https://app.example.com"
    assert stream.headers[b"access-control-allow-credentials"] == b"true"

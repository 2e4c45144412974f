"""docs/protocol/decisions.md H9: whatever fails inside an event stream, the stream ends and gives back all it holds:
its place among the session's subscribers, the user's open-stream count (H3) and the shutdown drain's list."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from gateway_site.asgi import application
from gateway_site.lifecycle import lifecycle
from gateway_site.sse import open_streams
from relay import event_streams as consumers
from relay import services as relay_services
from relay import session_store
from relay.registry import streams
from tests.relay.session_fixtures import OWNER, handshake, make_device, open_agent
from tests.relay_helpers import Stream, http_client, register, token_for

pytestmark = pytest.mark.django_db(transaction=True)


class Boom(RuntimeError):
    pass


def boom(*args, **kwargs):
    raise Boom("injected failure")


@pytest.fixture
async def live():
    keys = await make_device()
    agent = await open_agent()
    async with http_client(application) as http:
        client = await handshake(http, agent, keys)
        yield agent, keys, client
    await agent.close()


async def read_to_end(stream: Stream, timeout: float = 5) -> bytes:
    """Everything until the response's last body message; fails if the stream does not end within `timeout`."""
    body = stream.buffer
    stream.buffer = b""
    while True:
        body += await stream.chunk(timeout)
        if not stream.more:
            return body


async def nothing_held(session_id: str, live_before: int) -> bool:
    held = await open_streams.count("owner-1")
    return streams.of(session_id) == [] and held == 0 and lifecycle.live_count() == live_before


async def test_a_failure_before_the_headers_is_a_json_500_and_nothing_stays_registered(live, monkeypatch):
    _, _, client = live
    before = lifecycle.live_count()
    monkeypatch.setattr(consumers.SessionEventsConsumer, "join_group", boom)
    stream = Stream(application, f"/gateway/v1/sessions/{client.session_id}/events", OWNER)
    assert await stream.open() == 500
    assert await stream.body_json() == {"error": "Internal Server Error", "code": 500}
    await stream.io.wait(5)
    assert await nothing_held(client.session_id, before)


async def test_a_failure_during_the_replay_ends_the_stream_and_releases_it(live, monkeypatch):
    _, _, client = live
    before = lifecycle.live_count()
    monkeypatch.setattr(session_store.sessions, "events_after", boom)
    stream = Stream(application, f"/gateway/v1/sessions/{client.session_id}/events", OWNER)
    assert await stream.open() == 200
    assert (await read_to_end(stream)).startswith(b":connected\n\n")
    await stream.io.wait(5)
    assert await nothing_held(client.session_id, before)


async def test_a_failing_pump_ends_the_stream_and_a_new_one_works(live, monkeypatch):
    agent, keys, client = live
    before = lifecycle.live_count()
    stream = Stream(application, f"/gateway/v1/sessions/{client.session_id}/events", OWNER)
    assert await stream.open() == 200
    await stream.read_until(b"}\n\n")  # the replayed acknowledgement
    assert len(streams.of(client.session_id)) == 1 and await open_streams.count("owner-1") == 1
    monkeypatch.setattr("relay.event_streams.event_bytes", boom)
    await agent.send(keys.reply(client.session_id, "session.progress", "m1", {"status": "running"}))
    assert b"session.progress" not in await read_to_end(stream)
    await stream.io.wait(5)
    assert await nothing_held(client.session_id, before)

    monkeypatch.undo()
    again = Stream(application, f"/gateway/v1/sessions/{client.session_id}/events", OWNER)
    assert await again.open() == 200
    replayed = await again.read_until(b"session.event\ndata: ", timeout=5)
    assert replayed.startswith(b":connected\n\n")
    await again.read_until(b"}\n\n")
    await again.read_until(b"}\n\n")  # the progress frame the failed stream missed is in the backlog
    await again.close()
    assert await nothing_held(client.session_id, before)


async def test_a_failing_wake_ends_the_device_stream_and_releases_it(monkeypatch):
    await sync_to_async(register)("dev_cleanup", "owner-1")
    before = lifecycle.live_count()
    stream = Stream(application, "/gateway/v1/devices/events", token_for("owner-1"))
    assert await stream.open() == 200
    await stream.read_until(b"}\n\n")
    assert await open_streams.count("owner-1") == 1
    monkeypatch.setattr(relay_services, "device_view", boom)
    agent = await open_agent("dev_cleanup")  # its connection wakes the stream, and the wake fails
    try:
        await read_to_end(stream)
        await stream.io.wait(5)
        assert await open_streams.count("owner-1") == 0 and lifecycle.live_count() == before + 1  # the agent's socket
    finally:
        await agent.close()

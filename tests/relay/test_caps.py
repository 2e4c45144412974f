"""Per-device, per-user and per-session caps (decisions.md H3): sessions per device, open streams per user, pending
invites per device, and the replay backlog's byte budget."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async

from gateway_site.asgi import application
from relay.session_store import sessions
from tests.relay.session_fixtures import OWNER, make_device
from tests.relay.test_client_init import init
from tests.relay_helpers import Stream, http_client, register
from tests.shares_helpers import invite

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_device_holds_at_most_max_sessions(configure):
    await make_device()
    await sync_to_async(configure)(max_sessions_per_device=2)
    async with http_client(application) as http:
        assert (await init(http, "sess_cap_001")).status_code == 202
        assert (await init(http, "sess_cap_002", handshake_id="hs_2222")).status_code == 202
        refused = await init(http, "sess_cap_003", handshake_id="hs_3333")
        assert (refused.status_code, refused.json()) == (
            429,
            {"error": "too many sessions for this device", "max_sessions": 2},
        )
        assert (await init(http, "sess_cap_001")).status_code == 202  # repeating an existing session is no new one
    assert await sessions.get("sess_cap_003") is None


async def test_a_user_holds_at_most_max_streams(configure):
    await sync_to_async(configure)(max_streams_per_user=2)
    first, second = (Stream(application, "/gateway/v1/devices/events", OWNER) for _ in range(2))
    assert await first.open() == 200 and await second.open() == 200
    third = Stream(application, "/gateway/v1/devices/events", OWNER)
    assert await third.open() == 429
    assert json.loads(await third.chunk()) == {"error": "too many open streams", "max_streams": 2}
    await first.read_until(b":connected")
    await first.close()
    again = Stream(application, "/gateway/v1/devices/events", OWNER)
    assert await again.open() == 200  # a closed stream frees its place
    await second.close()
    await again.close()


def test_pending_invites_per_device_are_capped(client, configure):
    register("dev_shared1", "owner-1", email="owner@example.com")
    configure(max_pending_invites_per_device=2)
    assert invite(client, "a@example.com").status_code == 201
    assert invite(client, "b@example.com").status_code == 201
    refused = invite(client, "c@example.com")
    assert (refused.status_code, refused.json()) == (429, {"error": "too many pending invites for this device"})


async def test_the_backlog_keeps_the_newest_events_within_its_byte_budget():
    sid = "sess_backlog_budget"
    ids = [await sessions.append_event(sid, "session.event", "x" * 1000, max_bytes=10_000) for _ in range(50)]
    kept = await sessions.events_after(sid, 0)
    assert [event_id for event_id, _, _ in kept] == ids[-9:]  # 9 events of 1,013 bytes fit in 10,000
    assert await sessions.backlog_bytes(sid) <= 10_000
    # Replay after any kept id is exact.
    assert [event_id for event_id, _, _ in await sessions.events_after(sid, ids[-5])] == ids[-4:]
    huge = await sessions.append_event(sid, "session.event", "y" * 20_000, max_bytes=10_000)
    assert [event_id for event_id, _, _ in await sessions.events_after(sid, 0)] == [huge]  # the newest is always kept


async def test_the_backlog_budget_applies_to_stored_agent_frames(configure):
    from relay.session_events import session_event_publish

    configure(session_backlog_bytes=64 * 1024)
    for _ in range(20):
        await session_event_publish("sess_budget_02", "session.event", "z" * 10_000)
    assert await sessions.backlog_bytes("sess_budget_02") <= 64 * 1024
    assert len(await sessions.events_after("sess_budget_02", 0)) == 6


async def test_streams_count_against_their_user_only(configure):
    await sync_to_async(configure)(max_streams_per_user=1)
    mine = Stream(application, "/gateway/v1/devices/events", OWNER)
    assert await mine.open() == 200
    from tests.relay_helpers import token_for

    other = Stream(application, "/gateway/v1/devices/events", token_for("someone-else"))
    assert await other.open() == 200
    await mine.close()
    await other.close()


async def test_an_open_stream_renews_its_place(configure, monkeypatch):
    """A stream's place is a lease (gateway_site.leases) that lapses unless renewed: an open stream keeps it."""
    import asyncio
    import time

    from gateway_site import sse

    monkeypatch.setattr(sse, "STREAM_LEASE_SECONDS", 0.3)
    monkeypatch.setattr(sse, "STREAM_RENEW_SECONDS", 0.05)
    await sync_to_async(configure)(max_streams_per_user=1)
    stream = Stream(application, "/gateway/v1/devices/events", OWNER)
    assert await stream.open() == 200
    started = time.monotonic()
    while time.monotonic() - started < 1.0:  # over three lifetimes of the lease
        assert await sse.open_streams.count("owner-1") == 1
        await asyncio.sleep(0.05)
    assert await Stream(application, "/gateway/v1/devices/events", OWNER).open() == 429
    await stream.close()
    assert await sse.open_streams.count("owner-1") == 0

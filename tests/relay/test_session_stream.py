"""Agent frames into the session stream (docs/protocol/relay.md §4.5, §5.6, docs/protocol/decisions.md R3, R4, R6)."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async

from gateway_site.asgi import application
from relay import sessions as relay_sessions
from relay.event_streams import SessionEventsConsumer
from relay.registry import StreamEvent, streams
from relay.session_store import sessions as store
from tests import state_mode
from tests.relay.session_fixtures import DEVICE, OWNER, handshake, make_device, open_agent
from tests.relay_helpers import Stream, bearer, http_client
from tests.shares_helpers import BOB, EVE

pytestmark = pytest.mark.django_db(transaction=True)


def blocks(raw: bytes) -> list[str]:
    return [b for b in raw.decode().split("\n\n") if b]


def parse(block: str) -> dict:
    fields = {}
    for line in block.split("\n"):
        key, _, value = line.partition(": ")
        fields[key] = value
    return fields


@pytest.fixture
async def live():
    keys = await make_device()
    agent = await open_agent()
    async with http_client(application) as http:
        client = await handshake(http, agent, keys)
        yield http, agent, keys, client
    await agent.close()


async def open_stream(sid, token=OWNER, **headers):
    stream = Stream(application, f"/gateway/v1/sessions/{sid}/events", token, **headers)
    status = await stream.open()
    return stream, status


async def test_exact_wire_format_and_relayed_frames(live):
    http, agent, keys, client = live
    stream, status = await open_stream(client.session_id)
    assert status == 200
    assert stream.headers[b"content-type"] == b"text/event-stream"
    assert stream.headers[b"cache-control"] == b"no-cache"
    assert stream.headers[b"x-accel-buffering"] == b"no"
    first = blocks(await stream.read_until(b"}\n\n"))
    assert first[0] == ":connected"
    ack = parse(first[1])
    assert list(ack) == ["id", "event", "data"] and ack["id"].isdigit() and ack["event"] == "session.event"
    assert json.loads(ack["data"])["type"] == "session.handshake.ack"
    frame = keys.reply(client.session_id, "session.progress", "m1", {"status": "running"})
    await agent.send({**frame, "transport_token": None, "t_seq": 1})  # transport fields never reach clients
    event = parse(blocks(await stream.read_until(b"}\n\n"))[0])
    assert int(event["id"]) > int(ack["id"]) and event["event"] == "session.event"
    data = json.loads(event["data"])
    assert "transport_token" not in data and "t_seq" not in data
    assert data["conversation_id"] == f"conv_{client.session_id}"
    assert json.loads(client_open(client, data))["status"] == "running"
    await stream.close()


def client_open(client, frame) -> str:
    from tests.e2ee import open_frame

    return open_frame(client.a2c, frame, "agent_to_client")


async def test_agent_seq_must_increase(live):
    http, agent, keys, client = live
    stream, _ = await open_stream(client.session_id)
    await stream.read_until(b"}\n\n")
    one = keys.reply(client.session_id, "session.progress", "m1", {"status": "running"})
    await agent.send(one)
    await stream.read_until(b"}\n\n")
    await agent.send(one)  # replayed: dropped silently
    await agent.send({**one, "seq": 0})
    assert await stream.io.receive_nothing(0.3)
    assert await agent.nothing()
    later = keys.reply(client.session_id, "session.result", "m1", {"result": "done"})
    later["seq"] = 5  # (a re-labelled frame still relays; gaps are allowed)
    await agent.send(later)
    assert json.loads(parse(blocks(await stream.read_until(b"}\n\n"))[0])["data"])["seq"] == 5
    await stream.close()


async def test_unencrypted_agent_frames_are_dropped(live):
    http, agent, keys, client = live
    stream, _ = await open_stream(client.session_id)
    await stream.read_until(b"}\n\n")
    session = await store.get(client.session_id)
    assert session is not None
    before = session["updated_at"]
    await agent.send({"type": "session.result", "session_id": client.session_id, "result": "plain text"})
    await agent.send({"type": "session.error", "session_id": client.session_id, "error": "x", "extra": "field"})
    assert await stream.io.receive_nothing(0.4)
    session = await store.get(client.session_id)
    assert session is not None
    assert session["updated_at"] >= before
    await stream.close()


async def test_plaintext_session_error_is_relayed_as_its_own_event(live):
    # docs/protocol/decisions.md R3: the agent lost its keys (a restart) and says so in plaintext.
    http, agent, _, client = live
    stream, _ = await open_stream(client.session_id)
    await stream.read_until(b"}\n\n")
    await agent.send(
        {
            "type": "session.error",
            "session_id": client.session_id,
            "message_id": "m9",
            "error": "handshake_not_established",
        }
    )
    event = parse(blocks(await stream.read_until(b"}\n\n"))[0])
    assert event["event"] == "session.error" and event["id"].isdigit()
    assert json.loads(event["data"]) == {
        "type": "session.error",
        "session_id": client.session_id,
        "reason": "handshake_not_established",
    }
    await agent.send({"type": "session.error", "session_id": client.session_id, "error": "e" * 2000})  # over 1 KiB
    assert await stream.io.receive_nothing(0.3)
    await stream.close()


async def test_frames_for_foreign_or_unready_sessions_are_unauthorized(live):
    http, agent, keys, client = live
    frame = keys.reply(client.session_id, "session.progress", "m1", {"status": "running"})
    await agent.send({**frame, "handshake_id": "hs_other"})
    reply = await agent.recv()
    assert reply == {
        "type": "agent.error",
        "error": "unauthorized_session_frame",
        "session_id": client.session_id,
        "handshake_id": "hs_other",
    }
    await make_device("dev_other0001")
    other = await open_agent("dev_other0001")
    await other.send(frame)  # another device's socket
    assert (await other.recv())["error"] == "unauthorized_session_frame"
    await other.close()


async def test_generic_frames_are_appended(live):
    http, agent, _, client = live
    stream, _ = await open_stream(client.session_id)
    await stream.read_until(b"}\n\n")
    await agent.send({"type": "session.cancelled", "session_id": client.session_id})
    data = json.loads(parse(blocks(await stream.read_until(b"}\n\n"))[0])["data"])
    assert data == {
        "type": "session.cancelled",
        "session_id": client.session_id,
        "conversation_id": f"conv_{client.session_id}",
    }
    await stream.close()


async def test_last_event_id_replays_only_what_was_missed(live):
    http, agent, keys, client = live
    for n in range(3):
        await agent.send(keys.reply(client.session_id, "session.progress", f"m{n}", {"status": "running"}))
    await agent.send({"type": "ping"})
    await agent.recv()
    ids = [i for i, _, _ in await store.events_after(client.session_id, 0)]
    assert len(ids) == 4  # the ack and three frames
    stream, _ = await open_stream(client.session_id, Last_Event_ID=str(ids[1]))
    raw = await stream.read_until(f"id: {ids[3]}".encode())
    raw += await stream.read_until(b"}\n\n")
    assert [parse(b)["id"] for b in blocks(raw)[1:]] == [str(ids[2]), str(ids[3])]
    await stream.close()
    stream, _ = await open_stream(client.session_id, Last_Event_ID="not-a-number")
    raw = await stream.read_until(f"id: {ids[3]}".encode())
    raw += await stream.read_until(b"}\n\n")
    assert raw.count(b"\nevent: ") == 4
    await stream.close()


async def test_stream_errors(live):
    http, _, _, client = live
    for sid, token, status, body in [
        ("xx", OWNER, 400, {"error": "invalid session_id"}),
        ("sess_nope", OWNER, 404, {"error": "session not found"}),
        (client.session_id, EVE, 403, {"error": "forbidden"}),
        (client.session_id, None, 401, {"error": "missing bearer token"}),
    ]:
        stream, got = await open_stream(sid, token)
        assert (got, await stream.body_json()) == (status, body)


async def bob_created(session_id: str) -> None:
    """Record Bob (a grantee) as the session's creator: only then is he a member (decisions.md H5)."""
    from relay.session_store import sessions as store

    await store.update(session_id, lambda record: record.update(created_by="bob-2"))


async def test_heartbeat_and_lost_access(live, settings, client):
    http, agent, keys, session = live
    settings.GATEWAY_SESSION_HEARTBEAT_SECONDS = 0.2
    from tests.relay.test_messages import share_with_bob

    grant_id = await sync_to_async(share_with_bob)(client)
    await bob_created(session.session_id)
    stream, _ = await open_stream(session.session_id, BOB)
    await stream.read_until(b"}\n\n")
    await stream.read_until(b":heartbeat\n\n")
    # Access disappears without an announcement (as if by expiry): the next heartbeat notices.
    from relay import access
    from shares.models import Grant

    await sync_to_async(Grant.objects.filter(pk=grant_id).update)(grant_expires_at=1)
    await sync_to_async(access.forget_access)(DEVICE, "bob-2")
    raw = await stream.read_until(b":authorization_revoked\n\n", timeout=3)
    assert raw.endswith(b":authorization_revoked\n\n")
    assert (await stream.chunk()) == b"" and stream.more is False


async def test_grant_expiry_ends_the_grantees_stream_at_once_with_grant_expired(live, client, settings):
    """decisions.md H7: at the expiry, not at the next heartbeat (set to 60 s here, past the read's 10 s bound)."""
    import time

    from shares.models import Grant
    from tests.relay.test_messages import share_with_bob

    settings.GATEWAY_SESSION_HEARTBEAT_SECONDS = 60
    _, _, _, session = live
    grant_id = await sync_to_async(share_with_bob)(client)
    expires_at = int(time.time()) + 1
    await sync_to_async(Grant.objects.filter(pk=grant_id).update)(grant_expires_at=expires_at)
    await bob_created(session.session_id)
    stream, _ = await open_stream(session.session_id, BOB)
    ended = parse(blocks(await stream.read_until(b'"reason":"grant_expired"}\n\n', timeout=10))[-1])
    assert ended["event"] == "session.ended"
    assert json.loads(ended["data"]) == {
        "type": "session.ended",
        "session_id": session.session_id,
        "reason": "grant_expired",
    }
    assert (await stream.chunk()) == b"" and stream.more is False


async def test_revoke_ends_the_grantees_streams_with_session_ended(live, client):
    http, agent, keys, session = live
    from tests.relay.test_messages import share_with_bob

    grant_id = await sync_to_async(share_with_bob)(client)
    await bob_created(session.session_id)
    bob, _ = await open_stream(session.session_id, BOB)
    owner, _ = await open_stream(session.session_id, OWNER)
    await bob.read_until(b"}\n\n")
    await owner.read_until(b"}\n\n")
    assert (await http.post(f"/gateway/v1/shares/grants/{grant_id}/revoke", headers=bearer(OWNER))).status_code == 200
    ended = parse(blocks(await bob.read_until(b"}\n\n"))[0])
    assert ended["event"] == "session.ended"
    assert json.loads(ended["data"]) == {
        "type": "session.ended",
        "session_id": session.session_id,
        "reason": "grant_revoked",
    }
    assert (await bob.chunk()) == b"" and bob.more is False
    await agent.send(keys.reply(session.session_id, "session.progress", "m1", {"status": "running"}))
    assert b"session.event" in await owner.read_until(b"}\n\n")  # the owner's stream goes on
    await owner.close()


async def test_device_deletion_ends_streams(live):
    http, agent, _, session = live
    stream, _ = await open_stream(session.session_id)
    await stream.read_until(b"}\n\n")
    assert (await http.delete(f"/gateway/v1/devices/{DEVICE}", headers=bearer(OWNER))).status_code == 204
    ended = json.loads(parse(blocks(await stream.read_until(b"}\n\n"))[0])["data"])
    assert ended == {"type": "session.ended", "session_id": session.session_id, "reason": "device_deleted"}
    assert await store.get(session.session_id) is None


async def test_idle_sessions_are_swept_and_their_streams_end(live, monkeypatch):
    http, agent, _, session = live
    stream, _ = await open_stream(session.session_id)
    await stream.read_until(b"}\n\n")
    await agent.close()  # the device is no longer connected
    await store.update(
        session.session_id, lambda r: r.__setitem__("updated_at", r["updated_at"] - relay_sessions.IDLE_EXPIRY_SECONDS)
    )
    # The handshake's own client-init already swept in this period: let the next one sweep again.
    await state_mode.forget_sweep_claim()
    other = await http.post(
        "/gateway/v1/sessions/sess_new1/handshake/client-init",
        json={
            "handshake_id": "hs_new1",
            "device_id": DEVICE,
            "client_ephemeral_public_key": session.public_b64,
            "client_session_nonce": "n",
        },
        headers=bearer(OWNER),
    )
    assert other.status_code == 202  # client-init triggers the sweep
    ended = json.loads(parse(blocks(await stream.read_until(b"}\n\n"))[0])["data"])
    assert ended["reason"] == "expired"
    assert await store.get(session.session_id) is None
    response = await http.get(
        f"/gateway/v1/sessions/{session.session_id}/handshake/{session.handshake_id}", headers=bearer(OWNER)
    )
    assert (response.status_code, response.json()) == (404, {"error": "session not found"})


async def test_connected_live_sessions_are_not_swept(live):
    http, agent, _, session = live
    await store.update(
        session.session_id, lambda r: r.__setitem__("updated_at", r["updated_at"] - relay_sessions.IDLE_EXPIRY_SECONDS)
    )
    assert await relay_sessions.sessions_sweep() == []


async def test_a_slow_reader_is_evicted(live, monkeypatch):
    http, agent, keys, session = live
    monkeypatch.setattr(SessionEventsConsumer, "QUEUE_SIZE", 2)
    stream, _ = await open_stream(session.session_id)
    await stream.read_until(b"}\n\n")
    (consumer,) = streams.of(session.session_id)
    for n in range(4):
        consumer.offer(StreamEvent(10_000 + n, "session.event", "{}"))  # faster than any reader
    raw = b""
    while True:
        chunk = await stream.chunk()
        raw += chunk
        if not stream.more:
            break
    assert b"id: 10000" in raw  # what fitted was written, then the stream ended


async def test_an_expired_session_is_gone_before_any_sweep(live):
    http, agent, _, session = live
    await agent.close()
    await store.update(
        session.session_id, lambda r: r.__setitem__("updated_at", r["updated_at"] - relay_sessions.IDLE_EXPIRY_SECONDS)
    )
    response = await http.get(
        f"/gateway/v1/sessions/{session.session_id}/handshake/{session.handshake_id}", headers=bearer(OWNER)
    )
    assert (response.status_code, response.json()) == (404, {"error": "session not found"})
    assert await store.get(session.session_id) is None


async def test_a_non_ascii_last_event_id_replays_everything(live):
    http, agent, keys, session = live
    stream, status = await open_stream(session.session_id, Last_Event_ID="\u00b9\u00b2")
    assert status == 200
    assert b"session.handshake.ack" in await stream.read_until(b"}\n\n")
    await stream.close()


async def test_a_5000_digit_last_event_id_is_treated_as_absent(live):
    _, _, _, session = live
    stream, status = await open_stream(session.session_id, Last_Event_ID="9" * 5000)
    assert status == 200
    assert b"session.handshake.ack" in await stream.read_until(b"}\n\n")  # the whole backlog, no crash
    await stream.close()
    from relay.registry import streams

    assert streams.of(session.session_id) == []  # nothing left registered


async def test_head_on_a_stream_is_405(live):
    http, _, _, session = live
    response = await http.head(f"/gateway/v1/sessions/{session.session_id}/events", headers=bearer(OWNER))
    assert response.status_code == 405


async def test_plaintext_error_passes_unchanged_when_encryption_is_not_required(live, configure):
    http, agent, _, session = live
    await sync_to_async(configure)(require_encrypted_frames=False)
    stream, _ = await open_stream(session.session_id)
    await stream.read_until(b"}\n\n")
    await agent.send({"type": "session.error", "session_id": session.session_id, "error": "x"})
    event = parse(blocks(await stream.read_until(b"}\n\n"))[0])
    assert event["event"] == "session.event" and json.loads(event["data"])["error"] == "x"
    await stream.close()

"""The agent WebSocket (docs/protocol/relay.md §5): admission, every frame rule, replacement, deadlines and presence."""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings

from gateway_site.asgi import application
from relay import agent_socket as consumers
from relay import services, transport
from relay.registry import agents
from relay.stores import presence
from tests.relay_helpers import AgentSocket, auth, register, token_for

pytestmark = pytest.mark.django_db(transaction=True)
OWNER = token_for("owner-1")
DEVICE = "dev_test1"


@pytest.fixture
def device():
    return register(DEVICE, "owner-1")


async def refused(token, device_id=DEVICE, **hdrs):
    socket = AgentSocket(application, token, device_id, **hdrs)
    assert not await socket.connect()
    return socket.denial


# Admission (§5.1, O2)


async def test_missing_token_is_refused_with_401():
    assert await refused(None) == (401, {"error": "missing bearer token"})


async def test_bad_token_is_refused_with_401():
    assert await refused("not-a-jwt") == (401, {"error": "invalid access token: invalid jwt token"})


async def test_token_without_device_scope_is_refused(device):
    assert await refused(token_for("owner-1", scope="profile email")) == (
        403,
        {"error": "insufficient_scope", "required_scopes": ["device"], "missing_scopes": ["device"]},
    )


@pytest.mark.parametrize("device_id", [None, "", "x", "bad id!"])
async def test_device_id_query_param_is_required(device_id):
    assert await refused(OWNER, device_id) == (400, {"error": "device_id query param is required"})


async def test_unknown_device():
    assert await refused(OWNER, "dev_unknown") == (400, {"error": "device_not_found"})


async def test_other_owner_is_forbidden(device):
    assert await refused(token_for("other-2")) == (403, {"error": "forbidden"})


async def test_x_device_id_must_be_valid_and_match(device):
    assert await refused(OWNER, X_Device_Id="!!") == (400, {"error": "invalid X-Device-Id header"})
    assert await refused(OWNER, X_Device_Id="dev_other") == (
        400,
        {"error": "X-Device-Id header does not match device_id query param"},
    )


async def test_socket_cap_per_owner(device, monkeypatch):
    monkeypatch.setattr(services, "MAX_AGENT_SOCKETS_PER_OWNER", 1)
    await sync_to_async(register)("dev_test2", "owner-1")
    first = AgentSocket(application, OWNER, DEVICE)
    await first.open()
    assert await refused(OWNER, "dev_test2") == (429, {"error": "too many agent connections"})
    again = AgentSocket(application, OWNER, DEVICE)  # the same device is not counted
    await again.open()
    await first.close()  # the replaced socket's teardown keeps the device's place for its new socket
    assert await refused(OWNER, "dev_test2") == (429, {"error": "too many agent connections"})
    await again.close()
    other = AgentSocket(application, OWNER, "dev_test2")  # closing gave the place back
    await other.open()
    await other.close()


async def test_without_the_denial_extension_the_upgrade_is_closed(device):
    # Under Daphne a refusal is a close before accept (docs/protocol/decisions.md R7).
    communicator = WebsocketCommunicator(application, f"/gateway/v1/agent/connect?device_id={DEVICE}")
    connected, _ = await communicator.connect()
    assert not connected


def test_plain_http_get_is_426_after_the_same_checks(client, django_db_blocker):
    with django_db_blocker.unblock():
        register("dev_http1", "owner-1")
    assert client.get("/gateway/v1/agent/connect").status_code == 401
    response = client.get("/gateway/v1/agent/connect?device_id=dev_http1", **auth(OWNER))
    assert (response.status_code, response.json()) == (426, {"error": "Upgrade Required", "code": 426})
    response = client.get("/gateway/v1/agent/connect?device_id=dev_nope", **auth(OWNER))
    assert (response.status_code, response.json()) == (400, {"error": "device_not_found"})


# After the upgrade (§5.2, §5.4)


async def test_greeting_frames(device):
    socket = AgentSocket(application, OWNER, DEVICE, X_Device_Id=DEVICE)
    connected, init = await socket.open()
    assert connected["type"] == "gateway.connected" and connected["device_id"] == DEVICE
    assert connected["at"].endswith("Z")
    assert set(init) == {"type", "device_id", "connection_id", "transport_token", "expires_in", "at"}
    assert init["type"] == "transport.init" and init["expires_in"] == 3600
    assert init["connection_id"].startswith("agt:")
    transport.verify(
        "25e3081cec8616e400b71434e2c65cb910ec7bd84f9997249f03668401b2dcce",
        init["transport_token"],
        device_id=DEVICE,
        connection_id=init["connection_id"],
        now=time.time(),
    )
    await socket.close()


def test_transport_tokens_are_renewed_at_half_their_lifetime():
    from relay.agent_socket import transport_renewal_seconds

    assert transport_renewal_seconds(3600) == 1800 and transport_renewal_seconds(30) == 15


async def test_the_transport_token_is_renewed_for_as_long_as_the_socket_lives(device, configure, monkeypatch):
    """decisions.md H8, with the renewal period shortened so that the test sees three renewals."""
    await sync_to_async(configure)(transport_token_mode="required", transport_token_ttl_seconds=30)
    monkeypatch.setattr(consumers, "transport_renewal_seconds", lambda ttl: 0.05)
    socket = AgentSocket(application, OWNER, DEVICE)
    _, first = await socket.open()
    renewed = [await socket.recv(timeout=5) for _ in range(3)]
    assert [frame["type"] for frame in renewed] == ["transport.init"] * 3
    for frame in renewed:
        assert frame["connection_id"] == first["connection_id"] and frame["expires_in"] == 30
        transport.verify(
            settings.GATEWAY.transport_token_secret,
            frame["transport_token"],
            device_id=DEVICE,
            connection_id=first["connection_id"],
            now=time.time(),
        )
    await socket.close()


async def test_ping_is_answered_with_heartbeat(device):
    socket = AgentSocket(application, OWNER, DEVICE)
    await socket.open()
    await socket.send({"type": "ping"})
    reply = await socket.recv()
    assert reply["type"] == "heartbeat" and reply["device_id"] == DEVICE
    await socket.close()


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "agent.hello", "device_id": DEVICE, "agent_version": "0.1.0", "capabilities": {}},
        {"type": "heartbeat", "device_id": DEVICE, "at": "2026-04-12T10:00:15.123Z"},
        {"type": "agent.error", "error": "unsupported_type", "received_type": "gateway.connected"},
        {"type": "something.new"},
        {"type": 5, "session_id": 7},
        {"event": "session.result"},
        {"type": "session.handshake.ack", "session_id": "sess_unknown", "status": "ok"},
    ],
)
async def test_frames_that_get_no_answer(device, frame):
    socket = AgentSocket(application, OWNER, DEVICE)
    await socket.open()
    await socket.send(frame)
    assert await socket.nothing()
    await socket.send({"type": "ping"})  # and the socket is still fine
    assert (await socket.recv())["type"] == "heartbeat"
    await socket.close()


@pytest.mark.parametrize(
    "text", ["not json", "[1,2]", '"x"', "{", "", "[" * 100_000 + "]" * 100_000, "[" * 65 + "]" * 65]
)
async def test_invalid_json_is_answered(device, text):
    socket = AgentSocket(application, OWNER, DEVICE)
    await socket.open()
    await socket.send(text)
    assert await socket.recv() == {"type": "agent.error", "error": "invalid_json"}
    await socket.close()


async def test_frame_for_an_unknown_session_is_unauthorized(device):
    socket = AgentSocket(application, OWNER, DEVICE)
    await socket.open()
    await socket.send({"event": "session.result", "sessionId": "sess_1", "handshakeId": "hs_1"})
    assert await socket.recv() == {
        "type": "agent.error",
        "error": "unauthorized_session_frame",
        "session_id": "sess_1",
        "handshake_id": "hs_1",
    }
    await socket.close()


async def test_transport_checks_drop_bad_frames_silently(device):
    socket = AgentSocket(application, OWNER, DEVICE)
    _, init = await socket.open()
    token = init["transport_token"]
    frame = {"type": "session.result", "session_id": "sess_1"}
    await socket.send({**frame, "transport_token": "forged.token", "t_seq": 1})
    assert await socket.nothing()
    await socket.send({**frame, "transport_token": token, "t_seq": 2})
    assert (await socket.recv())["error"] == "unauthorized_session_frame"  # passed the transport check
    await socket.send({**frame, "transport_token": token, "t_seq": 2})  # replayed t_seq
    assert await socket.nothing()
    await socket.send({**frame, "transport_token": token, "t_seq": "3"})
    assert await socket.nothing()
    await socket.close()


async def test_required_mode_drops_frames_without_a_token(device, configure):
    await sync_to_async(configure)(transport_token_mode="required")
    socket = AgentSocket(application, OWNER, DEVICE)
    await socket.open()
    await socket.send({"type": "session.result", "session_id": "sess_1"})
    assert await socket.nothing()
    await socket.send({"type": "heartbeat"})  # exempt frames still pass
    await socket.send({"type": "ping"})
    assert (await socket.recv())["type"] == "heartbeat"
    await socket.close()


async def test_oversize_frame_closes_with_1009_and_the_server_stays_up(device):
    socket = AgentSocket(application, OWNER, DEVICE)
    await socket.open()
    await socket.send('{"type":"x","pad":"' + "a" * consumers.MAX_FRAME_BYTES + '"}')
    message = await socket.recv_raw()
    assert message["type"] == "websocket.close" and message["code"] == 1009
    second = AgentSocket(application, OWNER, DEVICE)
    await second.open()
    await second.close()


# Replacement, presence, deadlines (§5.2, §5.3)


async def test_newer_socket_replaces_the_older_one(device):
    first = AgentSocket(application, OWNER, DEVICE)
    await first.open()
    second = AgentSocket(application, OWNER, DEVICE)
    await second.open()
    closing = await first.recv_raw()
    assert closing["type"] == "websocket.close"
    assert (closing["code"], closing.get("reason")) == (1000, "replaced_by_new_connection")
    await first.close()  # the old socket's teardown must not take the device offline
    held = await presence.get(DEVICE)
    assert held is not None and held.online()
    assert agents.get(DEVICE) is not None
    await second.send({"type": "ping"})
    assert (await second.recv())["type"] == "heartbeat"
    await second.close()
    assert await presence.get(DEVICE) is None and agents.get(DEVICE) is None


async def test_presence_follows_the_socket(device):
    socket = AgentSocket(application, OWNER, DEVICE)
    await socket.open()
    record = await presence.get(DEVICE)
    assert record is not None and record.online() and record.connection_id.startswith("agt:")
    await socket.close()
    assert await presence.get(DEVICE) is None


async def test_read_deadline_closes_a_silent_socket(device, monkeypatch):
    monkeypatch.setattr(consumers, "READ_DEADLINE_SECONDS", 0.3)
    socket = AgentSocket(application, OWNER, DEVICE)
    await socket.open()
    closing = await socket.recv_raw(timeout=5)
    assert closing["type"] == "websocket.close"
    assert await presence.get(DEVICE) is None


async def test_any_frame_extends_the_read_deadline(device, monkeypatch):
    monkeypatch.setattr(consumers, "READ_DEADLINE_SECONDS", 1.5)
    socket = AgentSocket(application, OWNER, DEVICE)
    await socket.open()
    for _ in range(6):  # 2.4 s in all, longer than the deadline, but never 1.5 s of silence
        await asyncio.sleep(0.4)
        await socket.send({"type": "heartbeat"})
    assert await socket.nothing(0.2)
    await socket.close()


async def test_deleting_the_device_closes_its_socket(device, client):
    socket = AgentSocket(application, OWNER, DEVICE)
    await socket.open()
    response = await sync_to_async(client.delete)(f"/gateway/v1/devices/{DEVICE}", **auth(OWNER))
    assert response.status_code == 204
    closing = await socket.recv_raw()
    assert closing["type"] == "websocket.close"
    assert agents.get(DEVICE) is None


async def test_presence_is_renewed_while_the_socket_is_open(device, monkeypatch):
    monkeypatch.setattr(consumers, "PRESENCE_RENEW_SECONDS", 0.1)
    socket = AgentSocket(application, OWNER, DEVICE)
    await socket.open()

    async def expiry() -> int:
        held = await presence.get(DEVICE)
        assert held is not None
        return held.expires_at

    first_expiry = await expiry()
    deadline = time.monotonic() + 5
    while await expiry() == first_expiry:
        assert time.monotonic() < deadline, "presence was not renewed"
        await asyncio.sleep(0.05)
    await socket.close()


async def test_blank_x_device_id_counts_as_absent(device):
    socket = AgentSocket(application, OWNER, DEVICE, X_Device_Id=" ")
    await socket.open()
    await socket.close()
